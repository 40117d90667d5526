from django.apps import AppConfig


class LoginsConfig(AppConfig):
    name = "demo_project.logins"
    label = "logins"
    verbose_name = "New-device logins"
