"""Structured logs: one format for every process (web, worker, beat, simulator, gunicorn).

`LOG_FORMAT=json` (production's default) writes one JSON object a line; `console` (development's
default) writes readable lines. Both carry what is bound in `structlog.contextvars` while the
line is written: the request id, the organization and the user during a request (bound by
portal.runtime.middleware), the same request id and the task's name and id in the Celery tasks
that request enqueued (portal.runtime.celery). The standard library's loggers (Django, Celery,
gunicorn, ours) go through the same formatter, so nobody has to call structlog directly.

Secrets never reach a line: values of keys that name a secret are replaced, API tokens,
bearer credentials and passwords in URLs are masked wherever they appear, and so is the value
of every secret setting of this process (`secret_values()`), found in the environment.

No Django here: gunicorn's master and the simulator use it before (or without) Django.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

import structlog

REDACTED = "[redacted]"

# A key naming one of these holds a secret: its value is never written.
_SECRET_KEY = re.compile(
    r"passw(or)?d|secret|token|authorization|cookie|session|csrf|api[_-]?key|dsn|credential",
    re.IGNORECASE,
)
# Secrets recognised by their shape, wherever they appear in a line.
_PATTERNS = [
    (re.compile(r"\bbf_[0-9a-f]{8}_[A-Za-z0-9_-]{10,}"), "bf_" + REDACTED),  # API tokens
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 " + REDACTED),
    (re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s/]+@"), r"\1" + REDACTED + "@"),
    (
        re.compile(r"(?i)\b(password|passwd|secret|token|api_key)(\s*[=:]\s*)[^\s,;&'\"]+"),
        r"\1\2" + REDACTED,
    ),
]
# Environment variables whose values are secrets (besides any named like one).
_SECRET_ENV = re.compile(r"SECRET|TOKEN|PASSWORD|PASSWD|_KEY$|DSN|JWT|CREDENTIAL", re.IGNORECASE)
_NOT_SECRET_ENV = {"DJANGO_SETTINGS_MODULE", "PROVISIONING_TIMEOUT"}
_MIN_SECRET_LENGTH = 8

_secret_values: tuple[str, ...] = ()


def secret_values(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The values of this process's secret settings: every environment variable named like a
    secret, and the passwords inside URL settings (DATABASE_URL, REDIS_URL, …)."""
    environ = os.environ if environ is None else environ
    found: set[str] = set()
    for name, value in environ.items():
        if not value or name in _NOT_SECRET_ENV:
            continue
        if _SECRET_ENV.search(name) and len(value) >= _MIN_SECRET_LENGTH:
            found.add(value)
        for match in re.finditer(r"://[^:/@\s]*:([^@\s/]+)@", value):
            if len(match.group(1)) >= 4:
                found.add(match.group(1))
    return tuple(sorted(found, key=len, reverse=True))


def remember_secrets(values: Iterable[str]) -> None:
    """Also mask these values (secrets that do not come from the environment)."""
    global _secret_values
    merged = set(_secret_values) | {v for v in values if v and len(v) >= _MIN_SECRET_LENGTH}
    _secret_values = tuple(sorted(merged, key=len, reverse=True))


def scrub_text(text: str) -> str:
    for value in _secret_values:
        if value in text:
            text = text.replace(value, REDACTED)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def scrub(value: Any, key: str = "") -> Any:
    """`value` with every secret masked (dicts and lists walked)."""
    if key and _SECRET_KEY.search(key) and value not in (None, "", [], {}):
        return REDACTED
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, Mapping):
        return {k: scrub(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    return value


def scrub_processor(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key, value in list(event_dict.items()):
        if key.startswith("_") or key in ("exc_info", "stack_info"):
            continue
        if key == "event" and not isinstance(value, str):
            value = str(value)
        event_dict[key] = scrub(value, "" if key in ("event", "exception") else key)
    return event_dict


def _drop_color_message(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    event_dict.pop("color_message", None)
    return event_dict


def _process_name(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """Which of the portal's processes wrote the line (BACKFILL_PROCESS: web, worker, beat…)."""
    name = os.environ.get("BACKFILL_PROCESS")
    if name:
        event_dict.setdefault("process", name)
    return event_dict


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _process_name,
        _drop_color_message,
    ]


def _renderer(fmt: str) -> Any:
    if fmt == "json":
        return structlog.processors.JSONRenderer(sort_keys=False)
    # No locals in tracebacks (rich shows them by default): they may hold secrets.
    return structlog.dev.ConsoleRenderer(
        colors=False, exception_formatter=structlog.dev.plain_traceback, pad_event_to=40
    )


def formatter(fmt: str) -> structlog.stdlib.ProcessorFormatter:
    """The logging.Formatter of every handler: renders records of stdlib loggers and of
    structlog alike. Exceptions are rendered to text first, so the scrubber sees them."""
    return structlog.stdlib.ProcessorFormatter(
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            scrub_processor,
            _renderer(fmt),
        ],
        foreign_pre_chain=_shared_processors(),
    )


def configure(fmt: str = "console", level: str = "INFO") -> None:
    """structlog's own loggers go through the standard library (and so the same handlers)."""
    remember_secrets(secret_values())
    structlog.configure(
        processors=[
            *_shared_processors(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def logging_config(fmt: str = "console", level: str = "INFO") -> dict[str, Any]:
    """A dictConfig for Django's LOGGING (and gunicorn's logconfig_dict)."""
    if fmt not in ("json", "console"):
        raise ValueError(f"LOG_FORMAT is json or console, not {fmt!r}")
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "structured": {"()": "portal.lib.logs.formatter", "fmt": fmt},
        },
        "handlers": {
            "console": {"class": "logging.StreamHandler", "formatter": "structured"},
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            # Django's runserver prints its own access lines; gunicorn's come from
            # portal.lib.gunicorn. Propagate everything else to the root handler.
            # Django's default LOGGING gives "django" a console handler of its own (DEBUG):
            # everything goes through the root handler instead, once.
            "django": {"handlers": [], "level": level, "propagate": True},
            "django.server": {"handlers": [], "level": "WARNING", "propagate": True},
            "gunicorn.error": {"handlers": [], "propagate": True},
            "gunicorn.access": {"handlers": [], "propagate": True},
            "celery": {"level": level},
        },
    }


def default_format() -> str:
    """LOG_FORMAT, or what the settings module implies (production: json) for the processes
    that format logs before (or without) loading Django's settings: gunicorn's master, the
    simulator."""
    chosen = os.environ.get("LOG_FORMAT")
    if chosen:
        return chosen
    production = os.environ.get("DJANGO_SETTINGS_MODULE", "").endswith(".production")
    return "json" if production else "console"


def bind_context(**values: Any) -> None:
    """Add to what every line of this request or task carries (request_id, org, user_id…)."""
    structlog.contextvars.bind_contextvars(**values)


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)


def set_level(level: str) -> None:
    logging.getLogger().setLevel(level)
