"""The volume e-mails, one builder per kind; templates in templates/emails/volume_<kind>/."""

from django.conf import settings
from django.urls import reverse

from portal.notifications.registry import Email, email_kind
from portal.orgs.roles import Role
from portal.volumes.models import OrphanVolume, Volume


def recipients(volume: Volume) -> list[str]:
    """The organization's owners and admins: data is at stake."""
    return sorted(
        set(
            volume.organization.memberships.filter(role__in=[Role.OWNER, Role.ADMIN]).values_list(
                "user__email", flat=True
            )
        )
    )


def _context(volume: Volume) -> dict:
    slug = volume.organization.slug
    return {
        "volume": volume,
        "organization": volume.organization,
        "volume_url": settings.SITE_URL + reverse("volumes:detail", args=[slug, volume.pk]),
        "volumes_url": settings.SITE_URL + reverse("volumes:list", args=[slug]),
        "admin_url": settings.SITE_URL + reverse("admin:volumes_volume_change", args=[volume.pk]),
    }


def _volume(volume_id: int) -> Volume:
    return Volume.objects.select_related("organization", "region").get(pk=volume_id)


@email_kind("volume_lost")
def volume_lost(*, volume_id: int) -> list[Email]:
    """To the owners and admins, and to staff: the backend no longer has the volume."""
    volume = _volume(volume_id)
    context = _context(volume)
    return [
        Email(template="volume_lost", to=recipients(volume), context=context),
        Email(
            template="volume_lost_staff",
            to=[settings.OPERATOR_EMAIL],
            context=context,
        ),
    ]


@email_kind("volume_failed")
def volume_failed(*, volume_id: int) -> list[Email]:
    volume = _volume(volume_id)
    return [Email(template="volume_failed", to=recipients(volume), context=_context(volume))]


@email_kind("volume_orphan_found")
def volume_orphan_found(*, orphan_id: int) -> list[Email]:
    """To staff: a backend volume no portal volume owns; decide in the admin."""
    orphan = OrphanVolume.objects.get(pk=orphan_id)
    return [
        Email(
            template="volume_orphan_found",
            to=[settings.OPERATOR_EMAIL],
            context={
                "orphan": orphan,
                "admin_url": settings.SITE_URL
                + reverse("admin:volumes_orphanvolume_change", args=[orphan.pk]),
            },
        )
    ]
