"""The one e-mail kind the outbox itself knows: a message another library already wrote."""

from portal.notifications.registry import Email, Rendered, email_kind

ACCOUNT_MAIL = "account_mail"


@email_kind(ACCOUNT_MAIL, secret_params=("subject", "text", "html"))
def account_mail(*, to: str, subject: str, text: str, html: str = "") -> list[Email]:
    """allauth's account mails (verification, password reset, security notices), rendered in
    the request by the account adapter and sent through the outbox like every other mail."""
    return [Email(template="", to=[to], rendered=Rendered(subject=subject, text=text, html=html))]
