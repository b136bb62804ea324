"""Clusters: list, launch (with Idempotency-Key), get, events, start, stop, terminate.

Rules live in portal.clusters: the same selectors and services as the console pages.
"""

from django.http import Http404
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.response import Response

from portal.api.fields import (
    INT64_MAX,
    NoFieldsSerializer,
    StrictBooleanField,
    StrictCharField,
    StrictIntegerField,
    StrictSerializer,
)
from portal.api.idempotency import HEADER, idempotent, service_key
from portal.api.idempotency import PARAMETER as IDEMPOTENCY_PARAMETER
from portal.api.pagination import PagePagination
from portal.api.v1.base import ApiView
from portal.clusters import lifecycle, selectors, services
from portal.clusters.models import NAME_HELP, NAME_MAX_LENGTH, Cluster, State
from portal.instances.models import State as NodeState

TAGS = ["Clusters"]


class NodeSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="The node's instance id.")
    name = serializers.CharField(help_text="<cluster>-<index>; node 0 is the head.")
    index = serializers.IntegerField(source="node_index")
    state = serializers.ChoiceField(choices=NodeState.choices)
    ip = serializers.IPAddressField(allow_null=True, help_text="Public address (the head only).")
    private_ip = serializers.IPAddressField(
        allow_null=True, help_text="Address on the cluster's own network."
    )


class ClusterSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    state = serializers.ChoiceField(choices=State.choices)
    state_reason = serializers.CharField(help_text="Why it failed or was interrupted.")
    instance_type = serializers.CharField(source="instance_type.code")
    region = serializers.CharField(source="region.code")
    image = serializers.CharField(source="image.code")
    node_count = serializers.IntegerField()
    gpus = serializers.IntegerField(help_text="GPUs of all nodes.")
    preemptible = serializers.BooleanField()
    ssh_command = serializers.SerializerMethodField(
        help_text="To log in to the head node; empty until the cluster runs."
    )
    nodes = serializers.SerializerMethodField()
    volumes = serializers.SerializerMethodField(help_text="Names of the volumes every node mounts.")
    actions = serializers.SerializerMethodField(
        help_text="What may be asked of it now: stop, start, terminate."
    )
    created_at = serializers.DateTimeField()
    launched_at = serializers.DateTimeField(allow_null=True)
    state_changed_at = serializers.DateTimeField()
    terminated_at = serializers.DateTimeField(allow_null=True)

    def _nodes(self, cluster: Cluster) -> list:
        cache = self.context.setdefault("nodes", {})
        if cluster.pk not in cache:
            cache[cluster.pk] = list(selectors.cluster_nodes_for_cluster(cluster=cluster))
        return cache[cluster.pk]

    def get_ssh_command(self, cluster: Cluster) -> str:
        nodes = self._nodes(cluster)
        if cluster.state != State.RUNNING or not nodes:
            return ""
        return nodes[0].ssh_command

    @extend_schema_field(NodeSerializer(many=True))
    def get_nodes(self, cluster: Cluster):
        return NodeSerializer(self._nodes(cluster), many=True).data

    def get_volumes(self, cluster: Cluster) -> list[str]:
        return [v.name for v in selectors.cluster_volume_list_for_cluster(cluster=cluster)]

    def get_actions(self, cluster: Cluster) -> list[str]:
        return lifecycle.allowed_actions(cluster.state)


class ClusterEventSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    from_state = serializers.CharField(help_text="Empty for a note that is not a state change.")
    to_state = serializers.CharField()
    message = serializers.CharField()


class ClusterLaunchSerializer(StrictSerializer):
    name = StrictCharField(max_length=NAME_MAX_LENGTH, help_text=NAME_HELP)
    instance_type = StrictCharField(max_length=64, help_text="The nodes' type, e.g. gpu_8x_h100")
    region = StrictCharField(max_length=32, help_text="e.g. us-east-1")
    image = StrictCharField(max_length=64, help_text="Image code.")
    nodes = StrictIntegerField(
        min_value=0, max_value=INT64_MAX, help_text="From 2 to the operator's maximum."
    )
    ssh_key_ids = serializers.ListField(
        child=StrictIntegerField(min_value=1, max_value=INT64_MAX),
        min_length=1,
        max_length=50,
        help_text="Ids of SSH keys (see /ssh-keys/) to put on every node.",
    )
    preemptible = StrictBooleanField(
        required=False,
        default=False,
        help_text="Cheaper; reclaimed whole by the operator with two minutes' notice.",
    )
    volume_ids = serializers.ListField(
        child=StrictIntegerField(min_value=1, max_value=INT64_MAX),
        required=False,
        default=list,
        max_length=16,
        help_text="Ids of the organization's volumes (same region) to mount on every node.",
    )


def _get(view: ApiView, pk: int) -> Cluster:
    cluster = selectors.cluster_get_for_organization(organization=view.organization, pk=pk)
    if cluster is None:
        raise Http404("No such cluster.")
    return cluster


class ClusterList(ApiView):
    api_area = "instances"
    read_permission = "instances.view"
    write_permission = "instances.manage"
    field_names = {"ssh_keys": "ssh_key_ids", "volumes": "volume_ids"}
    extra_error_codes = [409]
    pagination_class = PagePagination

    @extend_schema(
        tags=TAGS,
        operation_id="clusters_list",
        summary="Clusters of the organization, newest first",
        responses={200: ClusterSerializer(many=True)},
    )
    def get(self, request):
        clusters = selectors.cluster_list_for_organization(organization=self.organization)
        return self.paginated(clusters, ClusterSerializer)

    @extend_schema(
        tags=TAGS,
        operation_id="clusters_launch",
        summary="Launch a cluster",
        description="Reserves the quota of every node's GPUs and records the cluster and its "
        "nodes (state pending); the backend places all nodes together or none, in the "
        "background: poll the cluster or subscribe to the cluster.state_changed webhook. "
        "Send an Idempotency-Key to retry safely.",
        parameters=[IDEMPOTENCY_PARAMETER],
        request=ClusterLaunchSerializer,
        responses={201: ClusterSerializer},
    )
    def post(self, request):
        return idempotent(self, request, lambda: self._launch(request))

    def _launch(self, request) -> Response:
        data = self.validated(ClusterLaunchSerializer)
        key = request.headers.get(HEADER)
        cluster = services.cluster_launch(
            membership=self.membership,
            name=data["name"],
            instance_type=data["instance_type"],
            region=data["region"],
            image=data["image"],
            nodes=data["nodes"],
            ssh_key_ids=data["ssh_key_ids"],
            preemptible=data["preemptible"],
            idempotency_key=service_key(request.auth, key) if key else None,
            volume_ids=data["volume_ids"],
        )
        cluster = _get(self, cluster.pk)
        return Response(ClusterSerializer(cluster).data, status=status.HTTP_201_CREATED)


class ClusterDetail(ApiView):
    api_area = "instances"
    read_permission = "instances.view"

    @extend_schema(
        tags=TAGS,
        operation_id="clusters_get",
        summary="One cluster with its nodes",
        responses={200: ClusterSerializer},
    )
    def get(self, request, pk: int):
        return Response(ClusterSerializer(_get(self, pk)).data)


class ClusterEvents(ApiView):
    api_area = "instances"
    read_permission = "instances.view"

    @extend_schema(
        tags=TAGS,
        operation_id="clusters_events",
        summary="The cluster's timeline, oldest first",
        responses={200: ClusterEventSerializer(many=True)},
    )
    def get(self, request, pk: int):
        events = selectors.cluster_events_for_cluster(cluster=_get(self, pk))[:500]
        return Response(ClusterEventSerializer(events, many=True).data)


class ClusterAction(ApiView):
    api_area = "instances"
    read_permission = "instances.view"
    write_permission = "instances.manage"
    extra_error_codes = [409]
    action = ""

    def act(self, request, pk: int) -> Response:
        self.validated(NoFieldsSerializer, data=request.data or {})
        cluster = _get(self, pk)
        services.cluster_action(membership=self.membership, cluster=cluster, action=self.action)
        return Response(ClusterSerializer(_get(self, pk)).data, status=status.HTTP_202_ACCEPTED)


def _action_view(action: str, summary: str, description: str) -> type[ClusterAction]:
    @extend_schema(
        tags=TAGS,
        operation_id=f"clusters_{action}",
        summary=summary,
        description=description + " All nodes together. Answers 409 when the state does not "
        "allow it; asking again while it is already on its way changes nothing.",
        request=None,
        responses={202: ClusterSerializer},
    )
    def post(self, request, pk: int):
        return self.act(request, pk)

    return type(f"Cluster{action.title()}", (ClusterAction,), {"action": action, "post": post})


ClusterStart = _action_view("start", "Start a stopped cluster", "Starts every node again.")
ClusterStop = _action_view(
    "stop", "Stop a running cluster", "GPUs are released; the disks stay (and are billed)."
)
ClusterTerminate = _action_view(
    "terminate",
    "Terminate a cluster",
    "Every node and its disk are destroyed and billing ends; volumes stay.",
)
