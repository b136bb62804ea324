"""Writes for webhooks: endpoints, emitting events, and delivering them.

Other domains call `webhook_emit` (or the helpers in portal.webhooks.events) inside the
transaction that makes the change: the delivery rows are written with it, and the delivery
tasks are enqueued once it commits, so a rolled-back change sends nothing.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from urllib.parse import urlsplit

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from portal.lib import metrics, safehttp, webhook_signature
from portal.lib.errors import ApplicationError
from portal.orgs.models import Membership, Organization
from portal.web.sql import column, table
from portal.webhooks import secrets, tasks
from portal.webhooks.conf import allowed_networks, setting
from portal.webhooks.models import (
    TEST_EVENT,
    URL_MAX_LENGTH,
    DeliveryState,
    EventType,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    manages_webhooks,
)

logger = logging.getLogger(__name__)

USER_AGENT = "Backfill-Webhooks/1.0"


# --- endpoints ----------------------------------------------------------------------------------


def _check_may_manage(membership: Membership) -> None:
    if not manages_webhooks(membership):
        raise ApplicationError(
            "Only owners and admins of the organization manage webhooks.", code="forbidden"
        )


def webhook_url_clean(url) -> str:
    """An https URL whose host is (and resolves to) public internet addresses only; plain http
    only to an address of OUTBOUND_ALLOWED_NETWORKS (a test's or a developer's receiver)."""
    url = str(url or "").strip()
    if not url:
        raise ApplicationError("Give the URL that receives the events.", field="url")
    if len(url) > URL_MAX_LENGTH:
        raise ApplicationError(f"A URL can be at most {URL_MAX_LENGTH} characters.", field="url")
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as exc:
        raise ApplicationError("That is not a valid URL.", field="url") from exc
    if not host or parts.scheme not in ("https", "http") or any(c.isspace() for c in url):
        raise ApplicationError("Give a full URL, e.g. https://example.com/hooks.", field="url")
    if parts.username or parts.password:
        raise ApplicationError(
            "Leave user names and passwords out of the URL; check the signature instead.",
            field="url",
        )
    allow = allowed_networks()
    if parts.scheme == "http":
        try:
            safehttp.resolve(url, allow=allow)
        except safehttp.Failure:
            raise ApplicationError(
                "Webhooks are sent over HTTPS only: give an https:// URL.", field="url"
            ) from None
        return url
    try:
        safehttp.check(url, allow=allow)
    except safehttp.Refused:
        raise ApplicationError(
            "Webhooks go to public addresses only, not to this machine or a private or "
            "reserved network.",
            field="url",
        ) from None
    return url


def _clean_event_types(event_types) -> list[str]:
    chosen = [str(value) for value in (event_types or [])]
    unknown = [value for value in chosen if value not in EventType.values]
    if unknown:
        raise ApplicationError(
            f"Unknown event type {unknown[0]!r}.", field="event_types", code="unknown"
        )
    if not chosen:
        raise ApplicationError("Choose at least one event.", field="event_types")
    return [value for value in EventType.values if value in chosen]


def webhook_endpoint_create(
    *, membership: Membership, url: str, event_types: list[str], description: str = ""
) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its signing secret (shown once)."""
    _check_may_manage(membership)
    url = webhook_url_clean(url)
    types = _clean_event_types(event_types)
    description = " ".join(str(description or "").split())[:200]
    organization = membership.organization
    limit = setting("WEBHOOK_ENDPOINTS_PER_ORGANIZATION")
    if organization.webhook_endpoints.count() >= limit:
        raise ApplicationError(
            f"An organization can have at most {limit} webhook endpoints.", code="limit"
        )
    secret = secrets.new_secret()
    endpoint = WebhookEndpoint.objects.create(
        organization=organization,
        url=url,
        description=description,
        event_types=types,
        secret_encrypted=secrets.encrypt(secret),
        secret_hint=secrets.hint(secret),
        created_by=membership.user,
    )
    return endpoint, secret


def _check_own(membership: Membership, endpoint: WebhookEndpoint) -> None:
    _check_may_manage(membership)
    if endpoint.organization_id != membership.organization_id:
        raise ApplicationError("There is no such endpoint.", code="not_found")


def webhook_endpoint_update(
    *,
    membership: Membership,
    endpoint: WebhookEndpoint,
    event_types: list[str],
    active: bool,
    description: str = "",
) -> WebhookEndpoint:
    _check_own(membership, endpoint)
    endpoint.event_types = _clean_event_types(event_types)
    endpoint.active = bool(active)
    endpoint.description = " ".join(str(description or "").split())[:200]
    endpoint.save(update_fields=["event_types", "active", "description"])
    return endpoint


def webhook_endpoint_roll_secret(*, membership: Membership, endpoint: WebhookEndpoint) -> str:
    """A new secret at once; the old one stops signing. Returns it (shown once)."""
    _check_own(membership, endpoint)
    secret = secrets.new_secret()
    endpoint.secret_encrypted = secrets.encrypt(secret)
    endpoint.secret_hint = secrets.hint(secret)
    endpoint.save(update_fields=["secret_encrypted", "secret_hint"])
    return secret


def webhook_endpoint_delete(*, membership: Membership, endpoint: WebhookEndpoint) -> None:
    """Deletes the endpoint and its delivery log; pending retries find nothing and stop."""
    _check_own(membership, endpoint)
    endpoint.delete()


# --- events -------------------------------------------------------------------------------------


def _body(*, event_id: uuid.UUID, event_type: str, organization: Organization, payload) -> str:
    return json.dumps(
        {
            "id": f"evt_{event_id.hex}",
            "type": event_type,
            "created": int(time.time()),
            "organization": organization.slug,
            "data": payload,
        },
        cls=DjangoJSONEncoder,
        separators=(",", ":"),
    )


def _enqueue(delivery_ids: list[int]) -> None:
    def send() -> None:
        for delivery_id in delivery_ids:
            tasks.webhook_deliver.delay(delivery_id)

    transaction.on_commit(send)


def _listening(organization_ids: set[int], event_type: str) -> set[int]:
    """Those of the organizations with an active endpoint subscribed to `event_type`.

    Every instance state change asks, and almost always nobody listens: so one query, in SQL
    built once (the ORM took longer to build it than PostgreSQL to answer), and outside the
    savepoint the writes take. A read leaves the caller's transaction as it was; only a
    broken connection fails it, and that fails the caller's change anyway.
    """
    with connection.cursor() as cursor:
        cursor.execute(_listening_sql(len(organization_ids)), list(organization_ids))
        rows = cursor.fetchall()
    return {
        organization_id
        for organization_id, event_types in rows
        if event_type in (json.loads(event_types) if isinstance(event_types, str) else event_types)
    }


@lru_cache(maxsize=64)
def _listening_sql(count: int) -> str:
    organization = column(WebhookEndpoint, "organization")
    placeholders = ", ".join(["%s"] * count)
    return (
        f"SELECT {organization}, {column(WebhookEndpoint, 'event_types')} "  # noqa: S608
        f"FROM {table(WebhookEndpoint)} WHERE {column(WebhookEndpoint, 'active')} "
        f"AND {organization} IN ({placeholders})"
    )


def webhook_emit(*, organization: Organization, event_type: str, payload: dict) -> list[int]:
    """Record `event_type` for every active endpoint of the organization that subscribes to
    it and enqueue the deliveries once the surrounding transaction commits.

    One query when nobody listens. Never raises for a webhook problem: a failure to record is
    logged, and the caller's change goes on (in its own savepoint, so the caller's transaction
    stays usable).
    """
    return webhook_emit_many(organization=organization, event_type=event_type, payloads=[payload])


def webhook_emit_many(
    *, organization: Organization, event_type: str, payloads: list[dict]
) -> list[int]:
    """`webhook_emit` of one event per payload (many instances changed at once): the same
    deliveries, one per event and subscribed endpoint, each event with its own id, read and
    written in one query each."""
    return webhook_emit_each(
        event_type=event_type, events=[(organization, payload) for payload in payloads]
    )


def webhook_emit_each(*, event_type: str, events: list[tuple[Organization, dict]]) -> list[int]:
    """`webhook_emit` of one event per (organization, payload), of one organization or
    several (a report's reclaim risk warnings): the endpoints of all of them read in one
    query, the deliveries written in one."""
    if event_type not in EventType.values:
        raise ValueError(f"Unknown webhook event type {event_type!r}")
    if not events:
        return []
    organizations = {organization.pk for organization, _payload in events}
    listening = _listening(organizations, event_type)
    if not listening:
        return []
    try:
        with transaction.atomic():
            endpoints: dict[int, list[WebhookEndpoint]] = {}
            for endpoint in WebhookEndpoint.objects.filter(
                organization_id__in=listening, active=True
            ):
                if endpoint.subscribes_to(event_type):
                    endpoints.setdefault(endpoint.organization_id, []).append(endpoint)
            rows = []
            for organization, payload in events:
                subscribed = endpoints.get(organization.pk)
                if not subscribed:
                    continue
                event_id = uuid.uuid4()
                body = _body(
                    event_id=event_id,
                    event_type=event_type,
                    organization=organization,
                    payload=payload,
                )
                rows += [
                    WebhookDelivery(
                        endpoint=endpoint, event_id=event_id, event_type=event_type, body=body
                    )
                    for endpoint in subscribed
                ]
            deliveries = WebhookDelivery.objects.bulk_create(rows)
    except Exception:
        logger.exception("webhook_emit %s for %s failed", event_type, sorted(organizations))
        return []
    ids = [delivery.pk for delivery in deliveries]
    _enqueue(ids)
    return ids


def webhook_send_test(*, membership: Membership, endpoint: WebhookEndpoint) -> WebhookDelivery:
    """A sample event to one endpoint, whatever it subscribes to (the "Send test event" button)."""
    _check_own(membership, endpoint)
    event_id = uuid.uuid4()
    with transaction.atomic():
        delivery = WebhookDelivery.objects.create(
            endpoint=endpoint,
            event_id=event_id,
            event_type=TEST_EVENT,
            body=_body(
                event_id=event_id,
                event_type=TEST_EVENT,
                organization=endpoint.organization,
                payload={
                    "message": "A test event from Backfill. Check the Backfill-Signature "
                    "header with your endpoint's secret.",
                    "sent_by": membership.user.email,
                },
            ),
        )
        _enqueue([delivery.pk])
    return delivery


# --- delivering ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class AttemptResult:
    """What one call did. `retry_in`: seconds until the task should look again (None: done)."""

    delivered: bool
    retry_in: float | None
    attempt: WebhookAttempt | None = None


def backoff(attempts: int) -> float:
    """Seconds to wait after `attempts` failed attempts: base * 2**(attempts-1), capped."""
    return min(
        setting("WEBHOOK_RETRY_BASE") * 2 ** max(0, attempts - 1), setting("WEBHOOK_RETRY_MAX")
    )


def _post(delivery: WebhookDelivery, number: int) -> tuple[int | None, str, str, bool]:
    """One HTTP POST of the delivery: (status code, error, response excerpt, permanent).

    Through portal.lib.safehttp: resolved once, every address checked, connected to that
    address. The error a customer sees is "connection failed", "timed out", a refusal or the
    HTTP status; the details (which might map ports) go to the log only.
    """
    endpoint = delivery.endpoint
    if not endpoint.active:
        return None, "The endpoint is disabled.", "", True
    body = delivery.body.encode()
    try:
        response = safehttp.request(
            "POST",
            endpoint.url,
            body=body,
            headers={
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                webhook_signature.HEADER: webhook_signature.sign(
                    secrets.decrypt(endpoint.secret_encrypted), body
                ),
                "Backfill-Event-Id": f"evt_{delivery.event_id.hex}",
                "Backfill-Event-Type": delivery.event_type,
                "Backfill-Delivery-Attempt": str(number),
            },
            timeout=setting("WEBHOOK_TIMEOUT"),
            allow=allowed_networks(),
            read_limit=500,
        )
    except safehttp.Refused as exc:
        logger.info("webhook delivery %s refused: %s", delivery.pk, exc.detail)
        return None, exc.reason, "", True
    except safehttp.Failure as exc:
        logger.info("webhook delivery %s attempt %s: %s", delivery.pk, number, exc.detail)
        return None, exc.reason, "", False
    excerpt = response.body[:500].decode("utf-8", "replace").replace("\x00", "")
    status_code = response.status
    error = ""
    if not 200 <= status_code < 300:
        error = f"The endpoint answered {status_code}."
        if 300 <= status_code < 400:
            error += " Redirects are not followed: give the final URL."
    return status_code, error, excerpt, False


def _lease_seconds() -> float:
    connect, read = setting("WEBHOOK_TIMEOUT")
    return connect + read + 10


def webhook_delivery_attempt(*, delivery_id: int) -> AttemptResult:
    """Make the delivery's next attempt if it is due, record it, and settle the state.

    Safe to run twice, and from several workers at once: each attempt is claimed by one
    conditional UPDATE (still pending, same attempt count, due, not being sent), which also
    leases the delivery while the request is under way; a caller that finds it not due or
    leased is told when to look again. No transaction is open during the HTTP request.
    A receiver may still see an event twice (a crash after its 2xx and before we record it):
    every event carries an id to deduplicate on.
    """
    delivery = WebhookDelivery.objects.select_related("endpoint").filter(pk=delivery_id).first()
    if delivery is None or delivery.state != DeliveryState.PENDING:
        return AttemptResult(delivered=False, retry_in=None)
    now = timezone.now()
    number = delivery.attempts + 1
    claimed = (
        WebhookDelivery.objects.filter(
            pk=delivery_id, state=DeliveryState.PENDING, attempts=delivery.attempts
        )
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .filter(Q(sending_until__isnull=True) | Q(sending_until__lte=now))
        .update(
            attempts=number,
            last_attempt_at=now,
            sending_until=now + timedelta(seconds=_lease_seconds()),
        )
    )
    if not claimed:
        current = WebhookDelivery.objects.filter(pk=delivery_id).first()
        if current is None or current.state != DeliveryState.PENDING:
            return AttemptResult(delivered=False, retry_in=None)
        wake = max((t for t in (current.next_attempt_at, current.sending_until) if t), default=now)
        return AttemptResult(delivered=False, retry_in=max(1.0, (wake - now).total_seconds()))

    started = time.monotonic()
    status_code, error, excerpt, permanent = _post(delivery, number)
    duration_ms = int((time.monotonic() - started) * 1000)

    now = timezone.now()
    delivered = status_code is not None and 200 <= status_code < 300
    gives_up = not delivered and (permanent or number >= setting("WEBHOOK_MAX_ATTEMPTS"))
    retry_in = None if delivered or gives_up else backoff(number)
    if delivered:
        state, delivered_at = DeliveryState.SUCCEEDED, now
    else:
        state = DeliveryState.FAILED if gives_up else DeliveryState.PENDING
        delivered_at = None
    with transaction.atomic():
        attempt = WebhookAttempt.objects.create(
            delivery_id=delivery_id,
            number=number,
            at=now,
            status_code=status_code,
            duration_ms=duration_ms,
            error=error[:500],
            response_excerpt=excerpt[:500],
        )
        WebhookDelivery.objects.filter(pk=delivery_id).update(
            state=state,
            delivered_at=delivered_at,
            next_attempt_at=None if retry_in is None else now + timedelta(seconds=retry_in),
            sending_until=None,
        )
    if delivered:
        metrics.WEBHOOK_DELIVERIES.inc()
    else:
        metrics.WEBHOOK_FAILURES.labels(final="true" if gives_up else "false").inc()
        logger.info("webhook delivery %s attempt %s failed: %s", delivery_id, number, error)
    return AttemptResult(delivered=delivered, retry_in=retry_in, attempt=attempt)
