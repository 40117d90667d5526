import logging
import time

from taskqueue import shared_task
from taskqueue.exceptions import SoftTimeLimitExceeded

logger = logging.getLogger(__name__)


class PaymentGatewayError(Exception):
    pass


@shared_task
def add(x, y):
    return x + y


@shared_task
def xsum(numbers):
    return sum(numbers)


@shared_task(bind=True, autoretry_for=(PaymentGatewayError,), max_retries=3, default_retry_delay=0)
def charge(self, order_id, amount):
    if self.request.retries == 0:
        raise PaymentGatewayError("gateway timeout")
    return {"order_id": order_id, "charged": amount, "attempts": self.request.retries + 1}


@shared_task(bind=True)
def crunch(self, seconds):
    # CELERY_TASK_SOFT_TIME_LIMIT applies to tasks that set none
    try:
        time.sleep(seconds)
    except SoftTimeLimitExceeded:
        return "cut short"
    return "finished"


@shared_task(bind=True, soft_time_limit=120)  # its own: CELERY_TASK_SOFT_TIME_LIMIT (2 s) would end it first
def sleepy(self, seconds):
    time.sleep(seconds)
    return seconds


@shared_task(ignore_result=True)
def audit(event):
    logger.info("audit: %s", event)


@shared_task
def refund(order_id):
    raise ValueError(f"order {order_id} cannot be refunded")


@shared_task
def log_error(request, exc, traceback):
    logger.error("Task %s raised: %r", request.id, exc)
    return str(exc)
