"""What the quotas app announces, for apps above it to react to (webhooks). Sent inside the
transaction that makes the change, so that what reacts commits or rolls back with it."""

from django.dispatch import Signal

# Staff or a rule decided a request (or asked for more information): `quota_request`, `message`.
quota_request_decided = Signal()
