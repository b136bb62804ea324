"""Which e-mails exist: each app registers a builder per kind, and the outbox task calls it.

    from portal.notifications.registry import Email, email_kind

    @email_kind("instance_running")
    def instance_running(*, instance_id: int) -> list[Email]:
        ...  # read the rows, return who gets what; [] sends nothing

Builders run in the worker, after the commit that caused the e-mail, with the ids given to
`notify()`; they read what they need and decide the recipients then. Apps import their
`emails` module in `AppConfig.ready()`, so every kind is registered before a task runs. This is
how a lower app (notifications) sends the e-mails of higher ones without importing them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

Attachment = tuple[str, bytes, str]  # filename, content, MIME type


@dataclass(frozen=True)
class Rendered:
    """A message already written (allauth's account mails): sent as it is."""

    subject: str
    text: str
    html: str = ""


@dataclass(frozen=True)
class Email:
    """One message to render from `templates/emails/<template>/` and send to each of `to`."""

    template: str
    to: Sequence[str]
    context: dict[str, Any] = field(default_factory=dict)
    attachments: Sequence[Attachment] = field(default_factory=tuple)
    rendered: Rendered | None = None


Builder = Callable[..., Sequence[Email]]
_BUILDERS: dict[str, Builder] = {}
_SECRET_PARAMS: dict[str, tuple[str, ...]] = {}
_CATEGORIES: dict[str, str] = {}
_SUMMARIES: dict[str, Callable[[list[dict[str, Any]]], Sequence[Email]]] = {}

# What a person may turn off on their notifications page (accounts), by category. A kind with
# no category (security, invitations, suspensions, reclaim notices, lost data, staff mail) is
# always sent.
CATEGORIES: dict[str, str] = {
    "instances": "An instance is running, or failed to start",
    "budget": "The month's spend reaches a budget threshold",
    "quotas": "A quota request is decided, or staff ask a question",
    "reservations": "Reservation quotes, confirmations and reminders",
    "invoices": "An invoice is issued",
}


def email_kind(
    kind: str, *, secret_params: Sequence[str] = (), category: str = ""
) -> Callable[[Builder], Builder]:
    """Register `builder` for `kind`. `secret_params` (a link's token, a rendered reset mail)
    are erased from the outbox row once the mail is sent. `category` (one of CATEGORIES) lets
    each person turn the kind off; without one it is always sent."""
    if category and category not in CATEGORIES:
        raise ValueError(f"unknown e-mail category {category!r}; known: {sorted(CATEGORIES)}")

    def register(builder: Builder) -> Builder:
        if kind in _BUILDERS and _BUILDERS[kind] is not builder:
            raise ValueError(f"e-mail kind {kind!r} is registered twice")
        _BUILDERS[kind] = builder
        _SECRET_PARAMS[kind] = tuple(secret_params)
        _CATEGORIES[kind] = category
        return builder

    return register


def category_of(kind: str) -> str:
    return _CATEGORIES.get(kind, "")


def email_summary(kind: str) -> Callable[[Callable], Callable]:
    """Register the builder of one e-mail for several rows of `kind` sent together (see
    `notify(batch=...)`); it receives the rows' params, oldest first."""

    def register(builder: Callable) -> Callable:
        _SUMMARIES[kind] = builder
        return builder

    return register


def summary_for(kind: str) -> Callable[[list[dict[str, Any]]], Sequence[Email]] | None:
    return _SUMMARIES.get(kind)


def secret_params(kind: str) -> tuple[str, ...]:
    return _SECRET_PARAMS.get(kind, ())


def builder_for(kind: str) -> Builder:
    try:
        return _BUILDERS[kind]
    except KeyError:
        raise ValueError(f"unknown e-mail kind {kind!r}; known: {sorted(_BUILDERS)}") from None


def kinds() -> list[str]:
    return sorted(_BUILDERS)
