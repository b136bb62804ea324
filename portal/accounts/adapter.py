from allauth.account.adapter import DefaultAccountAdapter
from django.conf import settings
from django.urls import reverse


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

    def send_mail(self, template_prefix: str, email: str, context: dict) -> None:
        context.setdefault("site_url", settings.SITE_URL)
        super().send_mail(template_prefix, email, context)
