"""Errbacks: handlers taking (request, exc, traceback) run in place; others are sent with the failed id."""

from __future__ import annotations

import logging

from . import registry
from .canvas import Signature
from .request import Request, request_context
from .utils import derived_id

logger = logging.getLogger("taskqueue.worker")


def call_errbacks(errbacks: list, request: Request, exc: BaseException, traceback: str | None) -> None:
    """Call each errback once; one that raises is logged and does not stop the others."""
    for index, errback in enumerate(errbacks):
        sig = Signature(errback)
        try:
            handler = registry.get_task(sig.name) if registry.is_registered(sig.name) else None
            if handler is not None and not sig.immutable and _takes_request_exc_traceback(handler, len(sig.args)):
                with request_context(Request(task=handler.name)):
                    handler(*sig.args, request, exc, traceback)
            else:
                sig.apply_async(() if sig.immutable else (request.id,),
                                task_id=sig.id or derived_id(request.id, f"errback{index}"),
                                parent_id=request.id, root_id=request.root_id or request.id)
        except Exception:
            logger.exception("Errback %s for %s[%s] raised; the failure is stored anyway",
                             sig.name, request.task, request.id)


def _takes_request_exc_traceback(task, partial_args: int) -> bool:
    """Whether the handler's positional parameters left after its partial args are exactly three."""
    params = list(task._signature().parameters.values())[(1 if task.bind else 0) + partial_args:]
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return len(positional) <= 3
    return len(positional) == 3


