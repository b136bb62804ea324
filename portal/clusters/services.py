"""What customers (and staff) do to clusters. No backend call here: the cluster's task does.

A launch records the cluster and its N nodes (instances with the cluster's id, pending),
reserves the quota of all their GPUs at once, and enqueues ONE task, all in one transaction.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from typing import Any

from django.db import IntegrityError, transaction

from portal.accounts.models import User
from portal.audit.services import audit_record
from portal.catalog.models import Image, InstanceType, Region
from portal.clusters import lifecycle, tasks
from portal.clusters.conf import setting
from portal.clusters.models import (
    FINAL_STATES,
    NAME_HELP,
    NAME_MAX_LENGTH,
    NAME_PATTERN,
    Cluster,
    ClusterEvent,
    State,
)
from portal.instances.capacity import free_capacity
from portal.instances.models import FINAL_STATES as NODE_FINAL_STATES
from portal.instances.models import Instance, InstanceEvent
from portal.instances.models import State as NodeState
from portal.instances.services import (
    _check_may_manage,
    _uuid_or_none,
    offer_for_launch,
)
from portal.lib.clusternaming import cluster_node_name, cluster_node_request_id
from portal.lib.errors import ApplicationError
from portal.orgs.models import Membership
from portal.orgs.standing import organization_launch_hold
from portal.quotas.services import quota_reserve
from portal.sshkeys.selectors import sshkey_list_for_launch
from portal.volumes.services import backend_shares_volumes, volumes_attach, volumes_for_launch

logger = logging.getLogger(__name__)


def cluster_max_nodes() -> int:
    return int(setting("CLUSTER_MAX_NODES"))


def _clean_name(name: Any) -> str:
    name = str(name or "").strip()
    if not name:
        raise ApplicationError("Give the cluster a name.", field="name", code="required")
    if len(name) > NAME_MAX_LENGTH:
        raise ApplicationError(
            f"A cluster's name can be at most {NAME_MAX_LENGTH} characters; this one has "
            f"{len(name)}.",
            field="name",
        )
    if not NAME_PATTERN.match(name):
        raise ApplicationError(f"That name cannot be used: {NAME_HELP}", field="name")
    return name


def _clean_nodes(nodes: Any) -> int:
    maximum = cluster_max_nodes()
    try:
        count = int(str(nodes).strip())
    except (TypeError, ValueError):
        raise ApplicationError(
            f"Give the number of nodes as a whole number from 2 to {maximum}.",
            field="nodes",
            code="invalid",
        ) from None
    if count < 2:
        raise ApplicationError(
            f"A cluster has at least 2 nodes (you asked for {count}); for one machine, launch "
            "an instance.",
            field="nodes",
            code="too_few",
        )
    if count > maximum:
        raise ApplicationError(
            f"A cluster can have at most {maximum} nodes (you asked for {count}). Ask us for "
            "more if you need a larger one.",
            field="nodes",
            code="too_many",
        )
    return count


def _taken(name: str) -> ApplicationError:
    return ApplicationError(
        f"You already have a cluster named “{name}”. Names are unique until a cluster ends.",
        field="name",
        code="name_taken",
    )


def cluster_launch(
    *,
    membership: Membership,
    name: str,
    instance_type: InstanceType | str,
    region: Region | str,
    image: Image | str,
    nodes: int | str,
    ssh_key_ids: Iterable[int | str],
    preemptible: bool = False,
    idempotency_key: uuid.UUID | str | None = None,
    volume_ids: Iterable[int | str] = (),
) -> Cluster:
    """Record a cluster and its nodes, reserve the quota of all their GPUs, enqueue its task.

    The same `idempotency_key` returns the cluster the first submit made. Every bad input
    raises ApplicationError with nothing written. `volume_ids`: the organization's volumes,
    in the cluster's region, mounted at /data/<name> on every node (the backend must share
    volumes between machines).
    """
    _check_may_manage(membership)
    organization = membership.organization
    if hold := organization_launch_hold(organization):
        raise ApplicationError(hold.reason, code=hold.code)
    key = _uuid_or_none(idempotency_key)
    if key is not None:
        existing = Cluster.objects.filter(organization=organization, idempotency_key=key).first()
        if existing is not None:
            return existing

    name = _clean_name(name)
    count = _clean_nodes(nodes)
    itype, place, os_image = offer_for_launch(
        instance_type=instance_type, region=region, image=image
    )
    keys = sshkey_list_for_launch(membership=membership, ids=list(ssh_key_ids or []))
    free = free_capacity().get(place.code, itype.code)
    if free is not None and free < count:
        raise ApplicationError(
            f"Only {free} nodes of {itype.name} are free in {place.name} right now; a cluster "
            f"of {count} does not fit. Launch a smaller cluster or try again later.",
            field="nodes",
            code="no_capacity",
        )
    node_names = [cluster_node_name(name, i) for i in range(count)]

    try:
        with transaction.atomic():
            if (
                Cluster.objects.filter(organization=organization, name=name)
                .exclude(state__in=FINAL_STATES)
                .exists()
            ):
                raise _taken(name)
            clash = (
                Instance.objects.filter(organization=organization, name__in=node_names)
                .exclude(state__in=NODE_FINAL_STATES)
                .values_list("name", flat=True)
                .first()
            )
            if clash:
                raise ApplicationError(
                    f"You have an instance named “{clash}”, the name of one of this cluster's "
                    "nodes; choose another cluster name.",
                    field="name",
                    code="name_taken",
                )
            volumes = volumes_for_launch(
                organization=organization, region=place, volume_ids=list(volume_ids or [])
            )
            if volumes and not backend_shares_volumes():
                raise ApplicationError(
                    "This cloud attaches a volume read-write to one machine at a time, so the "
                    "nodes of a cluster cannot share one. Launch the cluster without volumes.",
                    field="volumes",
                    code="not_shared",
                )
            quota_reserve(
                organization=organization,
                region=place,
                gpu_model=itype.gpu_model,
                gpus=itype.gpu_count * count,
                preemptible=bool(preemptible),
            )
            launched_keys = [
                {"name": k.name, "fingerprint": k.fingerprint, "public_key": k.public_key}
                for k in keys
            ]
            cluster = Cluster.objects.create(
                organization=organization,
                created_by=membership.user,
                name=name,
                instance_type=itype,
                region=place,
                image=os_image,
                node_count=count,
                preemptible=bool(preemptible),
                gpus_per_node=itype.gpu_count,
                ssh_keys=launched_keys,
                idempotency_key=key,
            )
            created = Instance.objects.bulk_create(
                [
                    Instance(
                        organization=organization,
                        created_by=membership.user,
                        name=node_names[i],
                        instance_type=itype,
                        region=place,
                        image=os_image,
                        preemptible=bool(preemptible),
                        gpus=itype.gpu_count,
                        ssh_keys=launched_keys,
                        request_id=uuid.UUID(cluster_node_request_id(str(cluster.request_id), i)),
                        cluster_id=cluster.pk,
                        node_index=i,
                        created_at=cluster.created_at,
                        state_changed_at=cluster.created_at,
                    )
                    for i in range(count)
                ]
            )
            for node in created:
                volumes_attach(volumes=volumes, instance_id=node.pk, instance_name=node.name)
            InstanceEvent.objects.bulk_create(
                [
                    InstanceEvent(
                        instance=node,
                        at=cluster.created_at,
                        to_state=NodeState.PENDING,
                        message=f"Node {node.node_index} of cluster {name}.",
                        actor=membership.user,
                    )
                    for node in created
                ]
            )
            ClusterEvent.objects.create(
                cluster=cluster,
                at=cluster.created_at,
                to_state=State.PENDING,
                message=f"Launched {count} × {itype.name} in {place.code}"
                + (" (preemptible)" if preemptible else "")
                + (f" with {', '.join(v.name for v in volumes)}." if volumes else "."),
                actor=membership.user,
            )
            audit_record(
                action="cluster.launched",
                organization=organization,
                actor=membership,
                target=cluster,
                detail={
                    "instance_type": itype.code,
                    "region": place.code,
                    "nodes": count,
                    "gpus": cluster.gpus,
                    "preemptible": cluster.preemptible,
                    **({"volumes": [v.name for v in volumes]} if volumes else {}),
                },
            )
            tasks.enqueue(cluster.pk, "provision")
    except (ApplicationError, IntegrityError) as error:
        if key is not None:
            ours = Cluster.objects.filter(organization=organization, idempotency_key=key)
            if ours.exists():
                return ours.get()
        if isinstance(error, IntegrityError):
            raise _taken(name) from None
        raise
    logger.info(
        "cluster %s %s launched: %s × %s in %s", cluster.pk, name, count, itype.code, place.code
    )
    return cluster


def _act(
    action: str,
    *,
    cluster: Cluster,
    actor: User | None,
    actor_kind: str | None = None,
    message: str = "",
) -> Cluster:
    with transaction.atomic():
        try:
            change = lifecycle.request(
                cluster.pk, action, actor=actor, actor_kind=actor_kind, message=message
            )
        except lifecycle.IllegalTransition:
            cluster.refresh_from_db()
            raise lifecycle.IllegalTransition(lifecycle.refusal(cluster, action)) from None
        if change is not None:
            audit_record(
                action="cluster.action",
                organization=change.cluster.organization,
                actor=actor,
                actor_kind=actor_kind,
                target=change.cluster,
                detail={"action": action},
            )
            tasks.enqueue(cluster.pk, "act")
    cluster.refresh_from_db()
    return cluster


def cluster_action(
    *,
    membership: Membership,
    cluster: Cluster,
    action: str,
    confirm_name: str | None = None,
) -> Cluster:
    """stop, start or terminate; with `confirm_name` (the console's typed confirmation) a
    terminate must name the cluster."""
    _check_may_manage(membership)
    if cluster.organization_id != membership.organization_id:
        raise ApplicationError("No such cluster.", code="not_found")
    if action not in lifecycle.ACTIONS:
        raise ApplicationError(f"There is no action “{action}”.", code="unknown_action")
    if action == "terminate" and confirm_name is not None and confirm_name.strip() != cluster.name:
        raise ApplicationError(
            f"Type the cluster's name, {cluster.name}, to confirm.",
            field="confirm_name",
            code="confirmation",
        )
    return _act(action, cluster=cluster, actor=membership.user)


def cluster_terminate_by_staff(*, user: User, cluster: Cluster, reason: str = "") -> Cluster:
    reason = " ".join((reason or "").split())[:400] or "No reason was given."
    return _act(
        "terminate",
        cluster=cluster,
        actor=user,
        actor_kind="staff",
        message=f"Terminated by the operator: {reason}",
    )
