"""Errors to Sentry (sentry-sdk) when SENTRY_DSN is set, scrubbed as the logs are.

No personal data is sent (send_default_pii off: no cookies, no user e-mail, no client IP),
sentry-sdk's own EventScrubber removes values under secret-looking keys, and `before_send`
then runs every string of the event (messages, exception values, local variables, breadcrumbs,
request data) through the logs' scrubber: API tokens, bearer credentials, passwords in URLs and
the values of this process's secret settings never leave the process.
"""

from __future__ import annotations

from typing import Any

from portal.lib.logs import scrub


def before_send(event: dict[str, Any], hint: dict[str, Any] | None = None) -> dict[str, Any]:
    return scrub(event)


def before_breadcrumb(crumb: dict[str, Any], hint: dict[str, Any] | None = None) -> dict[str, Any]:
    return scrub(crumb)


def init_sentry(dsn: str, *, environment: str, release: str | None = None) -> None:
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.django import DjangoIntegration
    from sentry_sdk.scrubber import DEFAULT_DENYLIST, EventScrubber

    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        release=release,
        send_default_pii=False,
        include_local_variables=True,
        max_request_body_size="never",
        event_scrubber=EventScrubber(
            denylist=[*DEFAULT_DENYLIST, "dsn", "dj_secret", "secret_key"], recursive=True
        ),
        before_send=before_send,  # type: ignore[arg-type]  # a plain dict is what it gets
        before_breadcrumb=before_breadcrumb,
        integrations=[DjangoIntegration(), CeleryIntegration()],
        traces_sample_rate=0,
    )
