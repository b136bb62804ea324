"""Sending one e-mail from three templates: subject, plain text and HTML."""

from collections.abc import Iterable

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string


def send_templated(
    *,
    template: str,
    to: Iterable[str],
    context: dict,
    attachments: Iterable[tuple[str, bytes, str]] = (),
) -> None:
    """Render `emails/<template>/{subject.txt,body.txt,body.html}` and send it.

    One message per recipient, so no customer sees another's address.
    """
    context = {"site_url": settings.SITE_URL, "site_name": settings.SITE_NAME, **context}
    subject = render_to_string(f"emails/{template}/subject.txt", context)
    subject = " ".join(subject.split())
    text = render_to_string(f"emails/{template}/body.txt", context)
    html = render_to_string(f"emails/{template}/body.html", context)
    for address in sorted(set(to)):
        message = EmailMultiAlternatives(
            subject=f"[{settings.SITE_NAME}] {subject}", body=text, to=[address]
        )
        message.attach_alternative(html, "text/html")
        for filename, content, mimetype in attachments:
            message.attach(filename, content, mimetype)
        message.send()
