"""Who joins through SSO, and whose password sign-in is refused.

* allauth's `user_logged_in` after a sign-in through an organization's provider: the person
  becomes a member with the organization's default role (portal.sso.services.sso_join).
* portal.accounts.policy: a member of an organization that requires SSO may not sign in with a
  password (the sign-in form says which provider to use).
"""

from allauth.account.signals import user_logged_in
from django.dispatch import receiver

from portal.accounts.policy import password_login_refusal_register
from portal.sso.selectors import (
    identity_provider_get_by_provider_id,
    identity_provider_required_for_user,
)
from portal.sso.services import sso_join


@receiver(user_logged_in, dispatch_uid="sso_join_on_login")
def join_on_sso_login(sender, request, user, **kwargs) -> None:
    sociallogin = kwargs.get("sociallogin")
    if sociallogin is None:
        return
    provider = identity_provider_get_by_provider_id(sociallogin.account.provider)
    if provider is not None:
        sso_join(user=user, provider=provider, request=request)


def sso_required(user) -> str | None:
    provider = identity_provider_required_for_user(user)
    if provider is None:
        return None
    return (
        f"{provider.organization.name} requires signing in through {provider.name}. "
        "Use “Sign in with SSO” with your work e-mail."
    )


password_login_refusal_register("sso", sso_required)
