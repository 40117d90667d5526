"""Scoring an order: slow, reports progress, on its own queue, never two at once per customer."""

import random
import time

from taskqueue import task

from .models import Order

STEPS = 10


@task(bind=True, queue="scoring", lock_key="customer", time_limit=120, soft_time_limit=110)
def score_order(self, order_id, customer):
    order = Order.objects.get(pk=order_id)
    Order.objects.filter(pk=order_id).update(scoring_started=time.time())
    for step in range(1, STEPS + 1):
        time.sleep(order.scoring_seconds / STEPS)
        self.update_state(state="PROGRESS", meta={"progress": step * 100 // STEPS})
    score = round(random.Random(order_id).uniform(0.1, 0.99), 3)
    Order.objects.filter(pk=order_id).update(score=score, scoring_finished=time.time())
    return {"order": order_id, "customer": customer, "score": score}
