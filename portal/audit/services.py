"""Write to the audit log. One call per meaningful action, from the service that makes the change.

    from portal.audit.services import audit_record

    # A person, in a view or a service that was handed the request (IP, and the user if no actor):
    audit_record(
        action="sshkey.added",
        organization=membership.organization,
        actor=membership.user,          # a User, or a Membership (its user is taken)
        request=request,
        target=key,                     # any saved model instance
        detail={"fingerprint": key.fingerprint},
    )

    # Operator staff in Django admin: say so, the person alone does not tell.
    audit_record(action="credit.granted", organization=org, actor=request.user,
                 actor_kind="staff", request=request, target=credit,
                 detail={"amount": credit.amount, "currency": credit.currency})

    # A Celery task or anything else without a person: no actor, kind "system"; name the task.
    audit_record(action="instance.state_changed", organization=instance.organization,
                 target=instance, detail={"from": "provisioning", "to": "running"},
                 actor_label="instances_reconcile")

    # The REST API: the token is the actor (any model instance that is neither a User nor a
    # Membership counts as a token: its pk is kept as actor_token_id, its `name` as the label
    # and its `user`, if any, as actor_user). With DRF, `request.auth` is taken when actor is None.
    audit_record(action="instance.launched", organization=org, actor=token, request=request,
                 target=instance)

The rules:

- `action` must be listed in portal/audit/actions.py (a ValueError otherwise): add yours there.
- Call it inside the transaction that makes the change, after the change succeeded: if the change
  rolls back, so does the entry. `audit_record_on_commit` (same arguments) writes the entry only
  once the surrounding transaction commits; `audit_record_many` writes the entries of one change
  made to many rows (a list of the same arguments) in one INSERT.
- `target` is stored as type "app_label.modelname", id and `str()` label, so the entry stays
  readable after the row is gone. Record before deleting (a deleted row has no pk), or target
  what survives (a removed member's user rather than the membership).
- `detail` stays small: at most 20 keys or items per level and 3 levels deep, strings cut at
  200 characters, Decimal / datetime / UUID stored as strings. Never put secrets in it
  (passwords, token values, private keys).
- The IP is REMOTE_ADDR. Behind proxies listed in TRUSTED_PROXIES, the first middleware
  (portal.runtime.middleware.TrustedProxyMiddleware) has already made it the client's address
  from X-Forwarded-For; from anyone else that header was dropped.
- Without `request`, the request being served (kept by `portal.audit.middleware`) gives the IP,
  but only to an entry that names its actor: a system entry never borrows it. And when that
  request was authenticated by an API token (DRF sets `request.auth` on the HttpRequest too)
  whose `user` is the named actor, the token becomes the actor: services called from the API
  with the token's membership are recorded as the token's, without passing the request down.
- Entries are never changed or deleted (see portal/audit/models.py).
"""

import ipaddress
import math
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.contrib.auth import get_user_model
from django.db import models, transaction

from portal.audit.actions import ACTIONS
from portal.audit.middleware import current_request
from portal.audit.models import ActorKind, AuditEntry

DETAIL_MAX_ITEMS = 20
DETAIL_MAX_DEPTH = 3
DETAIL_MAX_STRING = 200


def audit_record(
    *,
    action: str,
    organization=None,
    actor=None,
    request=None,
    target: models.Model | None = None,
    detail: dict | None = None,
    actor_kind: str | None = None,
    actor_label: str | None = None,
) -> AuditEntry:
    """Append one entry to the audit log and return it. See the module docstring.

    `actor_label` replaces the stored label of the actor: the e-mail typed in a failed sign-in,
    or the name of the task for a system actor.
    """
    entry = _build(
        action=action,
        organization=organization,
        actor=actor,
        request=request,
        target=target,
        detail=detail,
        actor_kind=actor_kind,
        actor_label=actor_label,
    )
    entry.save()
    return entry


def audit_record_many(entries: list[dict[str, Any]]) -> list[AuditEntry]:
    """`audit_record` for each of `entries` (its keyword arguments), written in one INSERT:
    the same entries, for a change made to many rows at once (a cluster's nodes)."""
    return AuditEntry.objects.bulk_create([_build(**entry) for entry in entries])


def audit_record_on_commit(**kwargs: Any) -> AuditEntry:
    """`audit_record`, written when the surrounding transaction commits (at once outside one).

    Actor, IP and labels are taken now, so a request that ends (or logs out) before the commit
    does not change them. The returned entry has no pk until the commit.
    """
    entry = _build(**kwargs)
    transaction.on_commit(entry.save)
    return entry


def _build(
    *,
    action: str,
    organization=None,
    actor=None,
    request=None,
    target: models.Model | None = None,
    detail: dict | None = None,
    actor_kind: str | None = None,
    actor_label: str | None = None,
) -> AuditEntry:
    if action not in ACTIONS:
        raise ValueError(f"Unknown audit action {action!r}: add it to portal/audit/actions.py")
    if actor_kind is not None and actor_kind not in ActorKind.values:
        raise ValueError(f"Unknown actor kind {actor_kind!r}: one of {ActorKind.values}")
    if detail is not None and not isinstance(detail, dict):
        raise TypeError("detail must be a dict")

    if actor is None and request is not None:
        actor = _request_actor(request)
    elif actor is not None and request is None:
        request = current_request()
        actor = _token_of(request, actor) or actor
    user, token_id, label, kind = _actor_fields(actor)
    if actor_label is not None:
        label = actor_label
    return AuditEntry(
        action=action,
        actor_kind=actor_kind or kind,
        actor_user=user,
        actor_label=label[:254],
        actor_token_id=token_id,
        organization=organization,
        organization_label=organization.name[:100] if organization is not None else "",
        target_type=target._meta.label_lower if target is not None else "",
        target_id=str(target.pk)[:64] if target is not None and target.pk is not None else "",
        target_label=str(target)[:200] if target is not None else "",
        ip=client_ip(request) if request is not None else None,
        detail=small_detail(detail or {}),
    )


def _request_actor(request):
    auth = getattr(request, "auth", None)  # Django REST framework: the token of the request
    if isinstance(auth, models.Model):
        return auth
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return user
    return None


def _token_of(request, actor):
    """The API token of the ambient request if it acts for `actor` (a User or Membership)."""
    auth = getattr(request, "auth", None)
    if not isinstance(auth, models.Model) or _stands_for_user(auth):
        return None
    if isinstance(auth, get_user_model()):
        return None
    user = actor.user if _stands_for_user(actor) else actor
    if isinstance(user, get_user_model()) and getattr(auth, "user_id", None) == user.pk:
        return auth
    return None


def _stands_for_user(actor: object) -> bool:
    """A membership acts as its user: any model that declares `audit_stands_for_user`."""
    return bool(getattr(type(actor), "audit_stands_for_user", False))


def _actor_fields(actor) -> tuple[Any, int | None, str, str]:
    """(user, token id, label, kind) for a User, a Membership, an API token or nobody."""
    user_model = get_user_model()
    if actor is None:
        return None, None, "", ActorKind.SYSTEM
    if _stands_for_user(actor):
        actor = actor.user
    if isinstance(actor, user_model):
        return actor, None, actor.email, ActorKind.USER
    if isinstance(actor, models.Model):
        owner = getattr(actor, "user", None)
        label = str(getattr(actor, "name", "") or actor)
        return (
            owner if isinstance(owner, user_model) else None,
            actor.pk,
            label,
            ActorKind.API_TOKEN,
        )
    raise TypeError(f"An audit actor is a User, a Membership or an API token, not {actor!r}")


def client_ip(request) -> str | None:
    meta = getattr(request, "META", None) or {}
    return _valid_ip(meta.get("REMOTE_ADDR", ""))


def _valid_ip(value: str) -> str | None:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def small_detail(value: Any, depth: int = 0) -> Any:
    """A JSON-ready copy of `value`, cut down to the limits in the module docstring."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # NaN and infinity are not JSON
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return _cut(value)
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        if depth >= DETAIL_MAX_DEPTH:
            return "…"
        items = list(value.items())
        small = {
            _cut(str(key), 50): small_detail(item, depth + 1)
            for key, item in items[:DETAIL_MAX_ITEMS]
        }
        if len(items) > DETAIL_MAX_ITEMS:
            small["…"] = f"{len(items) - DETAIL_MAX_ITEMS} more"
        return small
    if isinstance(value, list | tuple | set | frozenset):
        if depth >= DETAIL_MAX_DEPTH:
            return "…"
        items = list(value)
        small_list = [small_detail(item, depth + 1) for item in items[:DETAIL_MAX_ITEMS]]
        if len(items) > DETAIL_MAX_ITEMS:
            small_list.append(f"… {len(items) - DETAIL_MAX_ITEMS} more")
        return small_list
    return _cut(str(value))


def _cut(text: str, limit: int = DETAIL_MAX_STRING) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
