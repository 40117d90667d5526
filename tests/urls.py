from django.contrib import admin
from django.urls import include, path

import taskqueue.metrics
from tests.views import enqueue_multiply

urlpatterns = [
    path("admin/", admin.site.urls),
    path("metrics", taskqueue.metrics.view),
    path("django-tasks/multiply/", enqueue_multiply),
    path("", include("demo_project.demo.urls")),
    path("", include("demo_project.logins.urls")),
    path("", include("demo_project.payments.urls")),
]
