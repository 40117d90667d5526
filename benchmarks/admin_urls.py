from django.contrib import admin
from django.urls import path

import taskqueue.metrics

urlpatterns = [path("admin/", admin.site.urls), path("metrics", taskqueue.metrics.view)]
