"""Rendering one e-mail from three templates (subject, plain text, HTML) and sending it."""

from collections.abc import Iterable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMultiAlternatives
from django.template import engines
from django.template.loader import render_to_string
from django.utils import timezone

from portal.notifications.registry import Attachment, Email, Rendered
from portal.web.sql import ReadBuiltOnce


def render(email: Email, address: str) -> EmailMultiAlternatives:
    """`emails/<template>/{subject.txt,body.txt,body.html}` for one recipient, with times in
    the recipient's time zone (their account setting; UTC without one)."""
    if email.rendered is not None:
        return _prerendered(email.rendered, address)
    with timezone.override(recipient_time_zone(address)):
        return _render(email, address)


# Read for every e-mail sent: built once.
_TIME_ZONE = ReadBuiltOnce(
    lambda address: (
        get_user_model()
        .objects.filter(email__iexact=address)
        .order_by("pk")
        .values_list("time_zone")[:1]
    ),
    address=str,
)


def recipient_time_zone(address: str) -> ZoneInfo:
    found = _TIME_ZONE.rows(address=address)
    name = found[0][0] if found else None
    try:
        return ZoneInfo(name) if name else ZoneInfo("UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _render(email: Email, address: str) -> EmailMultiAlternatives:
    context = {
        "site_url": settings.SITE_URL,
        "site_name": settings.SITE_NAME,
        "support_email": settings.SUPPORT_EMAIL,
        **email.context,
    }
    subject = " ".join(render_text(f"emails/{email.template}/subject.txt", context).split())
    text = render_text(f"emails/{email.template}/body.txt", context)
    html = render_to_string(f"emails/{email.template}/body.html", context)
    message = EmailMultiAlternatives(
        subject=f"[{settings.SITE_NAME}] {subject}", body=text, to=[address]
    )
    message.attach_alternative(html, "text/html")
    _attach(message, email.attachments)
    return message


def render_text(template_name: str, context: dict) -> str:
    """A plain-text template: names with ', ", & or < stay as written (no HTML entities)."""
    return engines["text"].get_template(template_name).render(context)


def _attach(message: EmailMultiAlternatives, attachments: Iterable[Attachment]) -> None:
    for filename, content, mimetype in attachments:
        message.attach(filename, content, mimetype)


def _prerendered(rendered: Rendered, address: str) -> EmailMultiAlternatives:
    message = EmailMultiAlternatives(subject=rendered.subject, body=rendered.text, to=[address])
    if rendered.html:
        message.attach_alternative(rendered.html, "text/html")
    return message
