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


def email_kind(kind: str, *, secret_params: Sequence[str] = ()) -> Callable[[Builder], Builder]:
    """Register `builder` for `kind`. `secret_params` (a link's token, a rendered reset mail)
    are erased from the outbox row once the mail is sent."""

    def register(builder: Builder) -> Builder:
        if kind in _BUILDERS and _BUILDERS[kind] is not builder:
            raise ValueError(f"e-mail kind {kind!r} is registered twice")
        _BUILDERS[kind] = builder
        _SECRET_PARAMS[kind] = tuple(secret_params)
        return builder

    return register


def secret_params(kind: str) -> tuple[str, ...]:
    return _SECRET_PARAMS.get(kind, ())


def builder_for(kind: str) -> Builder:
    try:
        return _BUILDERS[kind]
    except KeyError:
        raise ValueError(f"unknown e-mail kind {kind!r}; known: {sorted(_BUILDERS)}") from None


def kinds() -> list[str]:
    return sorted(_BUILDERS)
