"""The delivery task: an interface to `services.webhook_delivery_attempt` that owns retries.

acks_late: a worker that dies mid-delivery leaves the message to be delivered again; the
service claims each attempt (and leases the delivery while sending), so a re-run or a second
worker never makes the same attempt twice; it is told when to look again instead.
Retries wait WEBHOOK_RETRY_BASE * 2**n seconds (capped at WEBHOOK_RETRY_MAX), up to
WEBHOOK_MAX_ATTEMPTS attempts; the service decides when to give up.
"""

import time

from celery import shared_task

from portal.webhooks import services


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None)
def webhook_deliver(self, delivery_id: int) -> bool:
    result = services.webhook_delivery_attempt(delivery_id=delivery_id)
    if result.retry_in is not None:
        if self.request.is_eager:  # apply() / always-eager retry at once: wait as a worker would
            time.sleep(result.retry_in)
        raise self.retry(countdown=result.retry_in)
    return result.delivered
