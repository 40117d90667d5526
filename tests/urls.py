from django.contrib import admin
from django.urls import include, path

import taskqueue.metrics

urlpatterns = [
    path("admin/", admin.site.urls),
    path("metrics", taskqueue.metrics.view),
    path("", include("demo_project.logins.urls")),
    path("", include("demo_project.payments.urls")),
]
