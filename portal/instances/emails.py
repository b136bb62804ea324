"""The instance e-mails, one builder per kind; templates in templates/emails/instance_<kind>/."""

from django.conf import settings
from django.urls import reverse

from portal.instances.models import Instance
from portal.notifications.registry import Email, email_kind
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


def _email(template: str, instance_id: int) -> list[Email]:
    instance = Instance.objects.select_related(
        "organization", "created_by", "instance_type", "region", "image"
    ).get(pk=instance_id)
    slug = instance.organization.slug
    return [
        Email(
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
            },
        )
    ]


@email_kind("instance_running")
def instance_running(*, instance_id: int) -> list[Email]:
    return _email("instance_running", instance_id)


@email_kind("instance_failed")
def instance_failed(*, instance_id: int) -> list[Email]:
    return _email("instance_failed", instance_id)


@email_kind("instance_reclaim_notice")
def instance_reclaim_notice(*, instance_id: int) -> list[Email]:
    return _email("instance_reclaim_notice", instance_id)


@email_kind("instance_interrupted")
def instance_interrupted(*, instance_id: int) -> list[Email]:
    return _email("instance_interrupted", instance_id)
