"""One function per instance e-mail; templates in templates/emails/instance_<kind>/."""

from django.conf import settings
from django.urls import reverse

from portal.instances.models import Instance
from portal.notifications.mail import send_templated
from portal.orgs.roles import Role


def recipients(instance: Instance) -> list[str]:
    """Who launched the instance, if still a member; otherwise the organization's owners."""
    organization = instance.organization
    if (
        instance.created_by_id
        and organization.memberships.filter(user_id=instance.created_by_id).exists()
    ):
        return [instance.created_by.email]
    return list(
        organization.memberships.filter(role=Role.OWNER).values_list("user__email", flat=True)
    )


def _send(template: str, instance_id: int, **context) -> None:
    instance = Instance.objects.select_related(
        "organization", "created_by", "instance_type", "region", "image"
    ).get(pk=instance_id)
    slug = instance.organization.slug
    send_templated(
        template=template,
        to=recipients(instance),
        context={
            "instance": instance,
            "organization": instance.organization,
            "instance_url": settings.SITE_URL
            + reverse("instances:detail", args=[slug, instance.pk]),
            "relaunch_url": settings.SITE_URL
            + reverse("instances:launch", args=[slug])
            + f"?from={instance.pk}",
            **context,
        },
    )


def send_instance_running(*, instance_id: int) -> None:
    _send("instance_running", instance_id)


def send_instance_failed(*, instance_id: int) -> None:
    _send("instance_failed", instance_id)


def send_instance_reclaim_notice(*, instance_id: int) -> None:
    _send("instance_reclaim_notice", instance_id)


def send_instance_interrupted(*, instance_id: int) -> None:
    _send("instance_interrupted", instance_id)
