"""Instances: list, launch (with Idempotency-Key), get, events, start, stop, reboot, terminate.

Rules live in portal.instances: the same selectors and services as the console pages.
"""

from decimal import Decimal

from drf_spectacular.utils import extend_schema
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
from portal.instances import lifecycle, selectors, services
from portal.instances.models import NAME_HELP, NAME_MAX_LENGTH, Instance, State
from portal.volumes.selectors import volume_attachments_by_instance

TAGS = ["Instances"]


class SshKeyRefSerializer(serializers.Serializer):
    name = serializers.CharField()
    fingerprint = serializers.CharField()


class InstanceSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    state = serializers.ChoiceField(choices=State.choices)
    state_reason = serializers.CharField(help_text="Why it failed or was interrupted.")
    instance_type = serializers.CharField(source="instance_type.code")
    gpu_model = serializers.CharField(source="instance_type.gpu_model.code")
    gpus = serializers.IntegerField()
    region = serializers.CharField(source="region.code")
    image = serializers.CharField(source="image.code")
    preemptible = serializers.BooleanField()
    max_price_per_hour = serializers.DecimalField(
        max_digits=10,
        decimal_places=4,
        allow_null=True,
        help_text="A preemptible instance's bid (decimal string); null: the on-demand price.",
    )
    ip = serializers.IPAddressField(allow_null=True)
    ssh_command = serializers.CharField(help_text="Empty until the instance has an address.")
    ssh_keys = SshKeyRefSerializer(many=True, help_text="The keys it was launched with.")
    hourly_price = serializers.SerializerMethodField(
        help_text="Running price per hour in force now (decimal string); null if none."
    )
    cost_so_far = serializers.SerializerMethodField(
        help_text="Running time so far times the price in force, to the cent (an estimate)."
    )
    actions = serializers.SerializerMethodField(
        help_text="What may be asked of it now: stop, start, reboot, terminate."
    )
    reclaim_at = serializers.DateTimeField(
        allow_null=True, help_text="When the operator takes a preemptible instance back."
    )
    stop_at = serializers.DateTimeField(
        source="pending_stop_at",
        allow_null=True,
        help_text="When Backfill stops it, announced with the reclaim notice because the "
        "organization reached a budget hard limit set to stop instances; null if none is.",
    )
    created_by = serializers.EmailField(source="created_by.email", allow_null=True)
    created_at = serializers.DateTimeField()
    launched_at = serializers.DateTimeField(allow_null=True)
    state_changed_at = serializers.DateTimeField()
    terminated_at = serializers.DateTimeField(allow_null=True)
    volumes = serializers.SerializerMethodField(
        help_text="The volumes attached at launch: id, name, mount_path."
    )

    def get_volumes(self, instance: Instance) -> list[dict]:
        attachments = self.context.get("volumes", {}).get(instance.pk)
        if attachments is None:
            attachments = selectors.instance_volume_list(instance=instance)
        return [
            {"id": a.volume_id, "name": a.volume.name, "mount_path": a.volume.mount_path}
            for a in attachments
        ]

    # The running prices of the instances serialized, by id, from the context (instance_data()
    # and the list read them for a whole page in one query).

    def _hourly_price(self, instance: Instance) -> Decimal | None:
        prices: dict[int, Decimal | None] = self.context["prices"]
        return prices[instance.pk]

    def get_hourly_price(self, instance: Instance) -> str | None:
        price = self._hourly_price(instance)
        return None if price is None else str(price)

    def get_cost_so_far(self, instance: Instance) -> str:
        price = self._hourly_price(instance)
        return str(selectors.instance_cost_so_far(instance=instance, hourly_price=price))

    def get_actions(self, instance) -> list[str]:
        return lifecycle.allowed_actions(instance.state)


def _priced(page: list[Instance]) -> dict[str, object]:
    """The serializer's context for a page of instances: their running prices and volumes."""
    return {
        "prices": selectors.instance_hourly_prices(page),
        "volumes": volume_attachments_by_instance(instance_ids=[i.pk for i in page]),
    }


def instance_data(instance: Instance) -> dict[str, object]:
    """One instance as the API shows it, priced."""
    return InstanceSerializer(instance, context=_priced([instance])).data


class InstanceEventSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    from_state = serializers.CharField(help_text="Empty for a note that is not a state change.")
    to_state = serializers.CharField()
    message = serializers.CharField()


class InstanceFilterSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=State.choices, required=False)
    region = serializers.CharField(max_length=32, required=False, help_text="Region code.")
    instance_type = serializers.CharField(
        max_length=64, required=False, help_text="Instance type code."
    )


class InstanceLaunchSerializer(StrictSerializer):
    name = StrictCharField(max_length=NAME_MAX_LENGTH, help_text=NAME_HELP)
    instance_type = StrictCharField(max_length=64, help_text="e.g. gpu_1x_h100")
    region = StrictCharField(max_length=32, help_text="e.g. us-east-1")
    image = StrictCharField(max_length=64, help_text="Image code.")
    ssh_key_ids = serializers.ListField(
        child=StrictIntegerField(min_value=1, max_value=INT64_MAX),
        min_length=1,
        max_length=50,
        help_text="Ids of SSH keys (see /ssh-keys/) to put on the machine.",
    )
    preemptible = StrictBooleanField(
        required=False,
        default=False,
        help_text="Cheaper, and reclaimed by the operator with two minutes' notice.",
    )
    max_price_per_hour = StrictCharField(
        required=False,
        allow_null=True,
        max_length=32,
        help_text="Preemptible only: the most it may cost per hour (decimal string, at most 4 "
        "decimals), at least the spot price now (GET /prices/); left out: the on-demand price. "
        "When the spot price rises above it, the instance is reclaimed with notice.",
    )
    currency = StrictCharField(
        required=False, max_length=3, help_text="The currency of max_price_per_hour (e.g. USD)."
    )
    volume_ids = serializers.ListField(
        child=StrictIntegerField(min_value=1, max_value=INT64_MAX),
        required=False,
        default=list,
        max_length=16,
        help_text="Ids of volumes (see /volumes/) in the same region to attach; each is "
        "mounted at /data/<name>.",
    )


class InstanceBidSerializer(StrictSerializer):
    max_price_per_hour = StrictCharField(
        allow_null=True,
        max_length=32,
        help_text="The new max price per hour (decimal string), at least the spot price now; "
        "null: the on-demand price.",
    )
    currency = StrictCharField(required=False, max_length=3)


class InstanceList(ApiView):
    api_area = "instances"
    read_permission = "instances.view"
    write_permission = "instances.manage"
    field_names = {"ssh_keys": "ssh_key_ids", "volumes": "volume_ids"}
    extra_error_codes = [409]
    pagination_class = PagePagination

    @extend_schema(
        tags=TAGS,
        operation_id="instances_list",
        summary="Instances of the organization, newest first",
        parameters=[InstanceFilterSerializer],
        responses={200: InstanceSerializer(many=True)},
    )
    def get(self, request):
        filters = InstanceFilterSerializer(data=request.query_params.dict())
        filters.is_valid(raise_exception=True)
        wanted = filters.validated_data
        instances = selectors.instance_list_for_organization(membership=self.membership)
        if "state" in wanted:
            instances = instances.filter(state=wanted["state"])
        if "region" in wanted:
            instances = instances.filter(region__code=wanted["region"])
        if "instance_type" in wanted:
            instances = instances.filter(instance_type__code=wanted["instance_type"])
        return self.paginated(instances, InstanceSerializer, prepare=_priced)

    @extend_schema(
        tags=TAGS,
        operation_id="instances_launch",
        summary="Launch an instance",
        description="Reserves quota and records the instance (state pending); provisioning "
        "happens in the background: poll the instance or subscribe to the "
        "instance.state_changed webhook. Send an Idempotency-Key (e.g. a UUID) to retry "
        "safely: the same key with the same body returns the first answer again, with "
        "another body a 409. Keys are remembered for 24 hours.",
        parameters=[IDEMPOTENCY_PARAMETER],
        request=InstanceLaunchSerializer,
        responses={201: InstanceSerializer},
    )
    def post(self, request):
        return idempotent(self, request, lambda: self._launch(request))

    def _launch(self, request) -> Response:
        data = self.validated(InstanceLaunchSerializer)
        key = request.headers.get(HEADER)
        instance = services.instance_launch(
            membership=self.membership,
            name=data["name"],
            instance_type=data["instance_type"],
            region=data["region"],
            image=data["image"],
            ssh_key_ids=data["ssh_key_ids"],
            preemptible=data["preemptible"],
            idempotency_key=service_key(request.auth, key) if key else None,
            max_price_per_hour=data.get("max_price_per_hour"),
            currency=data.get("currency"),
            volume_ids=data["volume_ids"],
        )
        instance = selectors.instance_get_for_member(membership=self.membership, pk=instance.pk)
        return Response(instance_data(instance), status=status.HTTP_201_CREATED)


class InstanceDetail(ApiView):
    api_area = "instances"
    read_permission = "instances.view"

    @extend_schema(
        tags=TAGS,
        operation_id="instances_get",
        summary="One instance",
        responses={200: InstanceSerializer},
    )
    def get(self, request, pk: int):
        instance = selectors.instance_get_for_member(membership=self.membership, pk=pk)
        return Response(instance_data(instance))


class InstanceBid(ApiView):
    api_area = "instances"
    read_permission = "instances.view"
    write_permission = "instances.manage"

    @extend_schema(
        tags=TAGS,
        operation_id="instances_set_max_price",
        summary="Change a preemptible instance's max price per hour",
        description="At least the spot price now. Raised during a price reclaim's notice (the "
        "spot price rose above the bid), it cancels that reclaim.",
        request=InstanceBidSerializer,
        responses={200: InstanceSerializer},
    )
    def post(self, request, pk: int):
        data = self.validated(InstanceBidSerializer)
        instance = selectors.instance_get_for_member(membership=self.membership, pk=pk)
        services.instance_bid_change(
            membership=self.membership,
            instance=instance,
            max_price_per_hour=data["max_price_per_hour"],
            currency=data.get("currency"),
        )
        instance = selectors.instance_get_for_member(membership=self.membership, pk=pk)
        return Response(instance_data(instance))


class InstanceEvents(ApiView):
    api_area = "instances"
    read_permission = "instances.view"

    @extend_schema(
        tags=TAGS,
        operation_id="instances_events",
        summary="The instance's timeline, newest first",
        responses={200: InstanceEventSerializer(many=True)},
    )
    def get(self, request, pk: int):
        instance = selectors.instance_get_for_member(membership=self.membership, pk=pk)
        events = selectors.instance_event_list_for_instance(instance=instance)[:500]
        return Response(InstanceEventSerializer(events, many=True).data)


class InstanceAction(ApiView):
    api_area = "instances"
    read_permission = "instances.view"
    write_permission = "instances.manage"
    extra_error_codes = [409]
    action = ""

    def act(self, request, pk: int) -> Response:
        self.validated(NoFieldsSerializer, data=request.data or {})
        instance = selectors.instance_get_for_member(membership=self.membership, pk=pk)
        services.instance_action(membership=self.membership, instance=instance, action=self.action)
        instance = selectors.instance_get_for_member(membership=self.membership, pk=pk)
        return Response(instance_data(instance), status=status.HTTP_202_ACCEPTED)


def _action_view(action: str, summary: str, description: str) -> type[InstanceAction]:
    @extend_schema(
        tags=TAGS,
        operation_id=f"instances_{action}",
        summary=summary,
        description=description + " Answers 409 when the state does not allow it; asking "
        "again while it is already on its way changes nothing.",
        request=None,
        responses={202: InstanceSerializer},
    )
    def post(self, request, pk: int):
        return self.act(request, pk)

    return type(f"Instance{action.title()}", (InstanceAction,), {"action": action, "post": post})


InstanceStart = _action_view("start", "Start a stopped instance", "Starts it again.")
InstanceStop = _action_view(
    "stop", "Stop a running instance", "GPUs are released; the disk stays (and is billed)."
)
InstanceReboot = _action_view("reboot", "Reboot a running instance", "Reboots the machine.")
InstanceTerminate = _action_view(
    "terminate",
    "Terminate an instance",
    "The machine and its disk are destroyed and billing ends.",
)
