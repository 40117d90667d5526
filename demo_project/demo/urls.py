"""The demo site's own pages: home, log in and log out (Django's auth views)."""

from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.urls import path
from django.views.generic import TemplateView

urlpatterns = [
    path("", login_required(TemplateView.as_view(template_name="home.html")), name="home"),
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True, next_page="home"),
         name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(next_page="login"), name="logout"),
]
