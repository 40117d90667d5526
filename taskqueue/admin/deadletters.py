"""Dead letters with a "Requeue" action: once the cause is fixed (a task name registered, say) the
message goes back to its queue and runs; its result, failed by dead-lettering, is PENDING again."""

from __future__ import annotations

from django.contrib import admin, messages

from .. import operations
from ..models import DeadLetter
from . import results


class DeadLetterAdmin(results.DeadLetterAdmin):
    actions = ["requeue_selected"]

    def has_requeue_permission(self, request) -> bool:
        """Requeueing is a change: view-only staff see dead letters and act on none."""
        return request.user.has_perm(f"{self.opts.app_label}.change_{self.opts.model_name}")

    @admin.action(description="Requeue selected (send back to their queues)", permissions=["requeue"])
    def requeue_selected(self, request, queryset):
        outcome = operations.requeue_dead_letters(list(queryset))
        if outcome.requeued:
            self.message_user(request, f"Requeued {len(outcome.requeued)} message(s): "
                                       f"{', '.join(outcome.requeued[:10])}", messages.SUCCESS)
        for letter_id, reason in outcome.refused.items():
            self.message_user(request, f"Dead letter {letter_id} not requeued: {reason}", messages.ERROR)


admin.site.unregister(DeadLetter)
admin.site.register(DeadLetter, DeadLetterAdmin)
