"""What the admin pages share: read-only model admins and pretty JSON."""

from __future__ import annotations

import json

from django.contrib import admin
from django.utils.html import format_html


def pretty(value) -> str:
    if value is None:
        return "-"
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, ensure_ascii=False, default=str))


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
