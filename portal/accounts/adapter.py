import contextlib

from allauth.account.adapter import DefaultAccountAdapter
from allauth.core import context as allauth_context
from django.conf import settings
from django.contrib.sites.shortcuts import get_current_site
from django.template import TemplateDoesNotExist
from django.urls import reverse

from portal.notifications.emails import ACCOUNT_MAIL
from portal.notifications.mail import render_text
from portal.notifications.services import notify


def _pending_invitation_url(request) -> str | None:
    pending = request.session.get("pending_invitation")
    return reverse("orgs:invitation_accept", args=[pending]) if pending else None


class AccountAdapter(DefaultAccountAdapter):
    def get_login_redirect_url(self, request) -> str:
        return _pending_invitation_url(request) or super().get_login_redirect_url(request)

    def get_signup_redirect_url(self, request) -> str:
        # Used instead of the login redirect when the login completes a sign-up, e.g. on
        # following the verification link in the session that signed up.
        return _pending_invitation_url(request) or super().get_signup_redirect_url(request)

    def get_email_verification_redirect_url(self, email_address) -> str:
        return reverse("dashboard")

    def render_mail(self, template_prefix, email, context, headers=None):
        """allauth's message, with its subject and plain-text body rendered as plain text (a
        name with an apostrophe stays an apostrophe, not &#x27;)."""
        message = super().render_mail(template_prefix, email, context, headers=headers)
        subject = " ".join(render_text(f"{template_prefix}_subject.txt", context).splitlines())
        message.subject = self.format_email_subject(subject.strip())
        if message.content_subtype != "html":
            with contextlib.suppress(TemplateDoesNotExist):  # an HTML-only message
                message.body = render_text(f"{template_prefix}_message.txt", context)
        return message

    def send_mail(self, template_prefix: str, email: str, context: dict) -> None:
        """Render allauth's message here (its context holds objects) and queue it in the
        outbox like every other e-mail: a slow or stopped SMTP server never holds up the page."""
        request = allauth_context.request
        ctx = {
            "request": request,
            "email": email,
            "current_site": get_current_site(request),
            "site_url": settings.SITE_URL,
            **context,
        }
        message = self.render_mail(template_prefix, email, ctx)
        html = next(
            (
                body
                for body, mimetype in getattr(message, "alternatives", ())
                if mimetype == "text/html"
            ),
            message.body if message.content_subtype == "html" else "",
        )
        notify(ACCOUNT_MAIL, to=email, subject=message.subject, text=message.body, html=html)
