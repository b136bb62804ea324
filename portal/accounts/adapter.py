from allauth.account.adapter import DefaultAccountAdapter
from django.conf import settings
from django.urls import reverse


class AccountAdapter(DefaultAccountAdapter):
    def get_login_redirect_url(self, request) -> str:
        pending = request.session.get("pending_invitation")
        if pending:
            return reverse("orgs:invitation_accept", args=[pending])
        return super().get_login_redirect_url(request)

    def get_email_verification_redirect_url(self, email_address) -> str:
        return reverse("dashboard")

    def send_mail(self, template_prefix: str, email: str, context: dict) -> None:
        context.setdefault("site_url", settings.SITE_URL)
        super().send_mail(template_prefix, email, context)
