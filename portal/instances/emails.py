"""The instance e-mails, one builder per kind; templates in templates/emails/instance_<kind>/."""

from django.conf import settings
from django.db.models import Exists, OuterRef, QuerySet
from django.urls import reverse

from portal.instances.models import Instance
from portal.notifications.registry import Email, email_kind, email_summary
from portal.orgs.models import Membership
from portal.orgs.roles import Role
from portal.web.sql import ReadBuiltOnce


def recipients(instance: Instance) -> list[str]:
    """Who launched the instance, if still a member; otherwise the organization's owners.
    (Whether the launcher is a member is read with the instance where `_email` reads it:
    `creator_is_member`.)"""
    organization = instance.organization
    creator_id = instance.created_by_id
    is_member = getattr(instance, "creator_is_member", None)
    if creator_id and is_member is None:
        is_member = organization.memberships.filter(user_id=creator_id).exists()
    creator = instance.created_by if creator_id and is_member else None
    if creator is not None:
        return [creator.email]
    return list(
        organization.memberships.filter(role=Role.OWNER).values_list("user__email", flat=True)
    )


def _with_recipients(instances: QuerySet[Instance]) -> QuerySet[Instance]:
    """The instances with what `recipients` reads: the launcher, and whether still a member."""
    return instances.select_related("organization", "created_by").annotate(
        creator_is_member=Exists(
            Membership.objects.filter(
                organization_id=OuterRef("organization_id"), user_id=OuterRef("created_by_id")
            )
        )
    )


# Read for every instance e-mail (one a launch at least): built once.
_WITH_RECIPIENTS = ReadBuiltOnce(
    lambda pk: _with_recipients(
        Instance.objects.select_related("instance_type", "region", "image")
    ).filter(pk=pk),
    pk=int,
)


def _email(template: str, instance_id: int) -> list[Email]:
    instance = _WITH_RECIPIENTS.get(pk=instance_id)
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


@email_kind("instance_running", category="instances")
def instance_running(*, instance_id: int) -> list[Email]:
    return _email("instance_running", instance_id)


@email_kind("instance_failed", category="instances")
def instance_failed(*, instance_id: int) -> list[Email]:
    return _email("instance_failed", instance_id)


@email_kind("instance_reclaim_notice")
def instance_reclaim_notice(*, instance_id: int) -> list[Email]:
    return _email("instance_reclaim_notice", instance_id)


@email_kind("instance_interrupted")
def instance_interrupted(*, instance_id: int) -> list[Email]:
    return _email("instance_interrupted", instance_id)


@email_summary("instance_running")
def instances_running(params: list[dict]) -> list[Email]:
    """Several instances of one person (a launch of many) running within moments: one e-mail."""
    instances = list(
        _with_recipients(Instance.objects.select_related("instance_type", "region"))
        .filter(pk__in=[p["instance_id"] for p in params])
        .order_by("name", "pk")
    )
    if not instances:
        return []
    organization = instances[0].organization
    slug = organization.slug
    return [
        Email(
            template="instances_running",
            to=recipients(instances[0]),
            context={
                "organization": organization,
                "instances": [
                    (
                        instance,
                        settings.SITE_URL + reverse("instances:detail", args=[slug, instance.pk]),
                    )
                    for instance in instances
                ],
                "count": len(instances),
                "list_url": settings.SITE_URL + reverse("instances:list", args=[slug]),
            },
        )
    ]
