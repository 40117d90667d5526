from django.urls import path

from . import views

urlpatterns = [
    path("logins/", views.logins_page, name="logins"),
    path("logins/<int:login_id>/state", views.login_state, name="login-state"),
    path("risk-api/score", views.risk_api, name="risk-api"),
    path("risk-api/control", views.risk_api_control, name="risk-api-control"),
]
