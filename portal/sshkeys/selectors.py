"""Reads for SSH keys, scoped to the organization and to what the member's role lets them see."""

from functools import lru_cache

from django.db.models import Q, QuerySet
from django.http import Http404

from portal.lib.errors import ApplicationError
from portal.orgs.models import Membership
from portal.sshkeys.models import SshKey, manages_all_keys
from portal.web.sql import column, table


def sshkey_list_for_member(*, membership: Membership) -> QuerySet[SshKey]:
    """Shared keys and the member's own personal keys; owners and admins see every key.

    Roles without access to instances (billing) see none.
    """
    keys = SshKey.objects.filter(organization_id=membership.organization_id).select_related("user")
    if not membership.can("instances.view"):
        return keys.none()
    if manages_all_keys(membership):
        return keys
    return keys.filter(Q(user__isnull=True) | Q(user_id=membership.user_id))


def sshkey_get_for_member(*, membership: Membership, pk: int) -> SshKey:
    """The key with this id if the member may see it; 404 otherwise (other org, not visible)."""
    key = sshkey_list_for_member(membership=membership).filter(pk=pk).first()
    if key is None:
        raise Http404("No such SSH key")
    return key


def sshkey_list_for_launch(*, membership: Membership, ids: list[int | str]) -> list[SshKey]:
    """The keys to put on a new instance, in the order given, duplicates dropped.

    Raises ApplicationError (field "ssh_keys") if no id is given, or code "not_found" if any
    id is not a key this member may see in this organization.
    """
    if not ids:
        raise ApplicationError(
            "Choose at least one SSH key, or you will not be able to log in to the instance.",
            field="ssh_keys",
            code="required",
        )
    not_found = ApplicationError(
        "One of the chosen SSH keys does not exist or is not available to you.",
        field="ssh_keys",
        code="not_found",
    )
    try:
        wanted = list(dict.fromkeys(int(i) for i in ids))
    except (TypeError, ValueError) as exc:
        raise not_found from exc
    if not all(0 < pk < 2**63 for pk in wanted):  # no key has it (and no column holds it)
        raise not_found
    found: dict[int, SshKey] = {}
    if membership.can("instances.view"):
        found = {
            key.pk: key
            for key in SshKey.objects.raw(
                _launch_keys_sql(len(wanted)),
                [
                    membership.organization_id,
                    *wanted,
                    manages_all_keys(membership),
                    membership.user_id,
                ],
            )
        }
    if len(found) != len(wanted):
        raise not_found
    return [found[pk] for pk in wanted]


@lru_cache(maxsize=16)
def _launch_keys_sql(count: int) -> str:
    """The rule of sshkey_list_for_member for `count` ids, as SQL built once (without the
    keys' users: a launch reads only the keys). Django took longer to build the query than
    PostgreSQL to answer it, at every launch."""
    fields = ", ".join(column(SshKey, field.name) for field in SshKey._meta.concrete_fields)
    user = column(SshKey, "user")
    marks = ", ".join(["%s"] * count)
    return (
        f"SELECT {fields} FROM {table(SshKey)}"  # noqa: S608 - the model's names; values are parameters
        f" WHERE {column(SshKey, 'organization')} = %s AND {column(SshKey, 'id')} IN ({marks})"
        f" AND (%s OR {user} IS NULL OR {user} = %s)"
    )
