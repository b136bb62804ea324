from allauth.account.signals import user_signed_up
from django.dispatch import receiver

from portal.orgs.services import organization_create_for_new_user


@receiver(user_signed_up)
def create_first_organization(sender, request, user, **kwargs) -> None:
    """Everyone starts with an organization of their own, unless they came to join one."""
    session = getattr(request, "session", None)
    if session is not None and session.get("pending_invitation"):
        return
    name = session.pop("signup_organization_name", "") if session is not None else ""
    organization_create_for_new_user(user=user, name=name, request=request)
