import contextlib

from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.internal.stagekit import clear_login
from allauth.core import context as allauth_context
from allauth.mfa.webauthn.internal.flows import did_use_passwordless_login
from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.sites.shortcuts import get_current_site
from django.shortcuts import redirect
from django.template import TemplateDoesNotExist
from django.urls import reverse

from portal.accounts.policy import password_login_refusal
from portal.notifications.emails import ACCOUNT_MAIL
from portal.notifications.mail import render_text
from portal.notifications.services import notify

VERIFICATION_PENDING_SESSION_KEY = "verification_pending_user"
VERIFICATION_PENDING_EMAIL_SESSION_KEY = "verification_pending_email"  # shown on the page


def _pending_invitation_url(request) -> str | None:
    pending = request.session.get("pending_invitation")
    return reverse("orgs:invitation_accept", args=[pending]) if pending else None


class AccountAdapter(DefaultAccountAdapter):
    def get_login_redirect_url(self, request) -> str:
        pending = _pending_invitation_url(request)
        if pending:
            return pending
        if request.user.is_staff:  # the operator's staff work in the admin
            return reverse("operations_overview")
        return super().get_login_redirect_url(request)

    def get_signup_redirect_url(self, request) -> str:
        # Used instead of the login redirect when the login completes a sign-up, e.g. on
        # following the verification link in the session that signed up.
        return _pending_invitation_url(request) or super().get_signup_redirect_url(request)

    def authenticate(self, request, **credentials):
        """A right password may still be refused by a higher app's rule (portal/sso: an
        organization that requires single sign-on); the form then says why."""
        user = super().authenticate(request, **credentials)
        if user is not None and "password" in credentials:
            refusal = password_login_refusal(user)
            if refusal:
                raise forms.ValidationError(refusal, code="password_login_refused")
        return user

    def pre_login(self, request, user, **kwargs):
        """A passkey alone (no password) is refused by the same rules as a password: an
        organization that requires single sign-on wants its provider, nothing else."""
        response = super().pre_login(request, user, **kwargs)
        if response is not None:
            return response
        if did_use_passwordless_login(request, user):
            refusal = password_login_refusal(user)
            if refusal:
                clear_login(request)
                messages.error(request, refusal)
                return redirect("account_login")
        return None

    def respond_email_verification_sent(self, request, user):
        """Remember whom the "check your inbox" page is for: its "send it again" button
        (portal/accounts/views.py) mails that person's unverified address, nobody else's."""
        if user is not None:
            request.session[VERIFICATION_PENDING_SESSION_KEY] = user.pk
            request.session[VERIFICATION_PENDING_EMAIL_SESSION_KEY] = user.email
        return super().respond_email_verification_sent(request, user)

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
            "site_name": settings.SITE_NAME,
            "support_email": settings.SUPPORT_EMAIL,
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
