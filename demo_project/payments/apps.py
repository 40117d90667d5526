from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "demo_project.payments"
    label = "payments"
    verbose_name = "Payment scoring"
