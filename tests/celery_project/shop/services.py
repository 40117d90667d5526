"""What the project's views call: tasks sent with apply_async options, a canvas, revoke, inspect."""

from notifications.tasks import notify_customer, send_receipt
from proj.celery import app

from taskqueue import chain, chord, group

from .tasks import add, charge, log_error, refund, sleepy, xsum


def place_order(order_id, amount, email):
    payment = charge.apply_async((order_id, amount), countdown=0.2, expires=120,
                                 headers={"origin": "checkout"})
    receipt = send_receipt.apply_async((order_id, email), priority=7, retry=True,
                                       retry_policy={"max_retries": 3, "interval_start": 0})
    return payment, receipt


def order_totals(lines):
    """chord: one add per line, then the total."""
    return chord(add.s(price, shipping) for price, shipping in lines)(xsum.s())


def pipeline(value):
    return chain(add.s(value, 1), add.s(10), add.s(100)).apply_async()


def fan_out(values):
    return group(add.s(v, v) for v in values).apply_async()


def welcome(email):
    return (add.si(1, 1) | notify_customer.si(email, "welcome")).delay()


def refund_order(order_id):
    return refund.apply_async((order_id,), link_error=log_error.s())


def start_long_job(seconds):
    return sleepy.apply_async((seconds,), queue="proj")


def cancel(task_id):
    app.control.revoke(task_id, terminate=True)


def running_jobs():
    return app.control.inspect().active()
