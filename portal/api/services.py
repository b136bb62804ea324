"""Writes of the API app: tokens (create, revoke, last use) and remembered idempotent answers."""

from __future__ import annotations

import ipaddress
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from portal.api import scopes as token_scopes
from portal.api.conf import setting
from portal.api.models import (
    MAX_ALLOWED_NETWORKS,
    NAME_MAX_LENGTH,
    ApiToken,
    IdempotencyRecord,
    Scope,
    manages_all_tokens,
)
from portal.audit.services import audit_record
from portal.lib.apitoken import new_token
from portal.lib.errors import ApplicationError
from portal.orgs.models import Membership

MAX_LIFETIME = timedelta(days=366)


def _clean_name(name) -> str:
    name = " ".join(str(name or "").split())
    if not name:
        raise ApplicationError(
            "Give the token a name, e.g. where it is used (“CI”, “nightly teardown”).",
            field="name",
            code="required",
        )
    if len(name) > NAME_MAX_LENGTH:
        raise ApplicationError(
            f"A token name can be at most {NAME_MAX_LENGTH} characters.", field="name"
        )
    return name


def clean_allowed_ips(entries) -> list[str]:
    """Addresses and networks in CIDR notation, normalized ("10.0.0.0/8", "2001:db8::1/128");
    an ApplicationError naming the first entry that is neither."""
    if isinstance(entries, str):
        entries = entries.replace(",", " ").split()
    cleaned: list[str] = []
    for entry in entries or []:
        text = str(entry).strip()
        if not text:
            continue
        try:
            network = ipaddress.ip_network(text, strict=True)
        except ValueError:
            hint = ""
            try:
                loose = ipaddress.ip_network(text, strict=False)
            except ValueError:
                pass
            else:
                hint = f" Did you mean {loose}?"
            raise ApplicationError(
                f"“{text[:60]}” is not an IP address or a network such as 203.0.113.0/24.{hint}",
                field="allowed_ips",
            ) from None
        if str(network) not in cleaned:
            cleaned.append(str(network))
    if len(cleaned) > MAX_ALLOWED_NETWORKS:
        raise ApplicationError(
            f"A token can have at most {MAX_ALLOWED_NETWORKS} allowed addresses or networks.",
            field="allowed_ips",
        )
    return cleaned


def _scopes_for(membership: Membership, scope: str | None, scopes) -> list[str]:
    """The token's scopes: a preset ("read", "read_write") or a list, never beyond the role."""
    if scopes is None:
        if scope not in Scope.values:
            raise ApplicationError("Choose read only, read and write, or scopes.", field="scope")
        if scope == Scope.READ_WRITE and not token_scopes.role_can_write(membership):
            raise ApplicationError(
                f"Your role ({membership.get_role_display().lower()}) changes nothing through "
                "the API: its tokens are read only.",
                field="scope",
                code="forbidden",
            )
        action = token_scopes.WRITE if scope == Scope.READ_WRITE else token_scopes.READ
        return token_scopes.allowed_for(membership, action)
    try:
        cleaned = token_scopes.normalize(scopes)
    except token_scopes.ScopeError as error:
        raise ApplicationError(str(error), field="scopes") from None
    if not cleaned:
        raise ApplicationError("Give the token at least one scope.", field="scopes")
    refused = token_scopes.beyond_role(cleaned, membership)
    if refused:
        raise ApplicationError(
            f"Your role ({membership.get_role_display().lower()}) does not allow "
            f"{', '.join(refused)}: a token never has more than its creator's role.",
            field="scopes",
            code="forbidden",
        )
    return cleaned


def api_token_create(
    *,
    membership: Membership,
    name: str,
    scope: str | None = None,
    scopes: list[str] | None = None,
    allowed_ips=None,
    expires_at: datetime | None = None,
    request=None,
) -> tuple[ApiToken, str]:
    """A new token for the member in their organization, and its value (shown once, never kept).

    Its scopes are a preset (`scope`: read, or read and write, as far as the role goes) or a
    list (`scopes`), checked against the member's role now; at each request the role then in
    force narrows it again. `allowed_ips` limits where it may be used from.
    """
    name = _clean_name(name)
    granted = _scopes_for(membership, scope, scopes)
    networks = clean_allowed_ips(allowed_ips)
    now = timezone.now()
    if expires_at is not None:
        if expires_at <= now:
            raise ApplicationError("The expiry must be in the future.", field="expires_at")
        if expires_at > now + MAX_LIFETIME:
            raise ApplicationError(
                "A token can be valid for at most a year; leave the expiry empty for a token "
                "that lasts until it is revoked.",
                field="expires_at",
            )
    for _attempt in range(5):  # a prefix collision (32 bits) is rare; try another
        token = new_token()
        try:
            with transaction.atomic():
                api_token = ApiToken.objects.create(
                    organization=membership.organization,
                    user=membership.user,
                    name=name,
                    prefix=token.prefix,
                    secret_hash=token.secret_hash,
                    scopes=granted,
                    allowed_ips=networks,
                    expires_at=expires_at,
                    created_at=now,
                )
                audit_record(
                    action="api_token.created",
                    organization=membership.organization,
                    actor=membership,
                    request=request,
                    target=api_token,
                    detail={
                        "scopes": granted,
                        "allowed_ips": networks,
                        "expires_at": expires_at,
                        "prefix": token.prefix,
                    },
                )
        except IntegrityError:
            continue
        return api_token, token.value
    raise RuntimeError("Could not find a free token prefix")


def api_token_revoke(*, membership: Membership, token: ApiToken, request=None) -> ApiToken:
    """Members revoke their own tokens; owners and admins any token of the organization."""
    if token.organization_id != membership.organization_id:
        raise ApplicationError("There is no such token.", code="not_found")
    if token.user_id != membership.user_id and not manages_all_tokens(membership):
        raise ApplicationError(
            "You can revoke only your own tokens. Ask an owner or admin.", code="forbidden"
        )
    with transaction.atomic():
        revoked = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now(), revoked_by=membership.user
        )
        token.refresh_from_db()
        if revoked:
            audit_record(
                action="api_token.revoked",
                organization=membership.organization,
                actor=membership,
                request=request,
                target=token,
                detail={"prefix": token.prefix, "owner": token.user.email},
            )
    return token


def api_token_touch(*, token: ApiToken, ip: str | None = None) -> None:
    """Note that the token was used now, from `ip`; at most one write per
    API_LAST_USED_RESOLUTION, unless the address changed."""
    now = timezone.now()
    recent = token.last_used_at and (now - token.last_used_at).total_seconds() < setting(
        "API_LAST_USED_RESOLUTION"
    )
    if recent and ip == token.last_used_ip:
        return
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=now, last_used_ip=ip)
    token.last_used_at, token.last_used_ip = now, ip


# --- Idempotency-Key --------------------------------------------------------------------------


def _expired_before() -> datetime:
    return timezone.now() - timedelta(seconds=setting("API_IDEMPOTENCY_TTL"))


def idempotency_claim(
    *, token: ApiToken, key: str, request_hash: str
) -> tuple[IdempotencyRecord, bool]:
    """The record of this key: (new record, True) to go ahead, or (finished record, False) to
    replay its answer.

    Raises ApplicationError "idempotency_key_reused" when the key came with another request,
    and "idempotency_in_progress" while the first request with the key is still running.
    """
    IdempotencyRecord.objects.filter(
        token=token, key=key, created_at__lt=_expired_before()
    ).delete()
    for _attempt in range(3):
        try:
            with transaction.atomic():
                created = IdempotencyRecord.objects.create(
                    token=token, key=key, request_hash=request_hash
                )
            return created, True
        except IntegrityError:
            record = IdempotencyRecord.objects.filter(token=token, key=key).first()
            if record is None:  # released meanwhile: try again
                continue
        if record.request_hash != request_hash:
            raise ApplicationError(
                "This Idempotency-Key was already used with a different request. Use a new "
                "key for a new request; send the same body to get the first answer again.",
                code="idempotency_key_reused",
            )
        if record.completed_at is None:
            if _take_over(record):
                return record, True
            raise ApplicationError(
                "A request with this Idempotency-Key is still being processed; retry shortly.",
                code="idempotency_in_progress",
            )
        return record, False
    raise ApplicationError(
        "A request with this Idempotency-Key is still being processed; retry shortly.",
        code="idempotency_in_progress",
    )


def _take_over(record: IdempotencyRecord) -> bool:
    """A claim not finished within API_IDEMPOTENCY_LEASE seconds was left behind (the process
    that made it died): the retry takes it over. The conditional UPDATE is the lock, so of two
    retries one wins; the service it runs again is idempotent on the key (a launch returns the
    instance it already made)."""
    lease = timedelta(seconds=setting("API_IDEMPOTENCY_LEASE"))
    now = timezone.now()
    if record.created_at > now - lease:
        return False
    taken = IdempotencyRecord.objects.filter(
        pk=record.pk, completed_at__isnull=True, created_at=record.created_at
    ).update(created_at=now)
    if taken:
        record.created_at = now
    return bool(taken)


def idempotency_complete(*, record: IdempotencyRecord, status_code: int, body: str) -> None:
    record.status_code = status_code
    record.response_body = body
    record.completed_at = timezone.now()
    record.save(update_fields=["status_code", "response_body", "completed_at"])


def idempotency_release(*, record: IdempotencyRecord) -> None:
    """Forget a key whose request failed on our side, so that a retry runs it again."""
    IdempotencyRecord.objects.filter(pk=record.pk, completed_at__isnull=True).delete()


def idempotency_purge_expired() -> int:
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=_expired_before()).delete()
    return deleted
