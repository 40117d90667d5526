from proj.celery import app

from taskqueue import shared_task


@app.task(rate_limit="100/m", acks_late=True, reject_on_worker_lost=True, expires=300, priority=5,
          serializer="json")
def send_receipt(order_id, email):
    return f"receipt for order {order_id} sent to {email}"


@shared_task(bind=True, acks_late=True, retry_kwargs={"max_retries": 2}, throws=(KeyError,))
def notify_customer(self, email, message):
    return {"to": email, "message": message}
