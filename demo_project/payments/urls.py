from django.urls import path

from . import views

urlpatterns = [
    path("api/orders/", views.create_order, name="create-order"),
    path("api/orders/<int:order_id>/score", views.order_score, name="order-score"),
    path("payments/", views.payments_page, name="payments"),
]
