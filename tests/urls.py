from django.contrib import admin
from django.urls import include, path

from tests.views import enqueue_multiply

urlpatterns = [
    path("admin/", admin.site.urls),
    path("django-tasks/multiply/", enqueue_multiply),
    path("", include("demo_project.demo.urls")),
    path("", include("demo_project.logins.urls")),
    path("", include("demo_project.payments.urls")),
]
