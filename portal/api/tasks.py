from celery import shared_task

from portal.api.services import idempotency_purge_expired


@shared_task(acks_late=True)
def idempotency_purge() -> int:
    """Periodic (django-celery-beat): forget Idempotency-Keys older than API_IDEMPOTENCY_TTL."""
    return idempotency_purge_expired()
