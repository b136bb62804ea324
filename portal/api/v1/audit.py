"""The organization's audit log, newest first, with the audit page's filters."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers

from portal.api.pagination import PagePagination
from portal.api.v1.base import ApiView
from portal.audit.actions import ACTIONS, GROUPS
from portal.audit.forms import LAST_DAY as AUDIT_LAST_DAY
from portal.audit.models import ActorKind
from portal.audit.selectors import audit_entry_list_for_organization

TAGS = ["Audit log"]
# The audit page refuses dates past this too: a day after it overflows datetime.
LAST_DAY = AUDIT_LAST_DAY.isoformat()


class AuditEntrySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    at = serializers.DateTimeField()
    action = serializers.CharField(help_text="A code such as instance.launched.")
    action_label = serializers.CharField()
    actor = serializers.CharField(
        source="actor_label", help_text="E-mail of the person, or the API token's name."
    )
    actor_kind = serializers.ChoiceField(choices=ActorKind.choices)
    target_type = serializers.CharField(help_text="e.g. instances.instance; empty if none.")
    target_id = serializers.CharField()
    target = serializers.CharField(source="target_label")
    ip = serializers.IPAddressField(allow_null=True)
    detail = serializers.DictField(help_text="Facts of the action (old and new values).")


class AuditFilterSerializer(serializers.Serializer):
    action = serializers.ChoiceField(
        choices=sorted({*ACTIONS, *GROUPS}),
        required=False,
        help_text="A group (instance: every instance.*) or one code.",
    )
    actor = serializers.CharField(
        max_length=254, required=False, help_text="Part of the actor's e-mail or token name."
    )
    since = serializers.DateField(required=False, help_text="From this day (UTC), included.")
    until = serializers.DateField(required=False, help_text="To this day (UTC), included.")

    def validate_since(self, value):
        if value.isoformat() > LAST_DAY:
            raise serializers.ValidationError(f"Give a day up to {LAST_DAY}.")
        return value

    validate_until = validate_since

    def validate(self, attrs):
        since, until = attrs.get("since"), attrs.get("until")
        if since and until and until < since:
            raise serializers.ValidationError({"until": ["The end date is before the start."]})
        return attrs


class AuditLog(ApiView):
    api_area = "audit"
    read_permission = "audit.view"
    pagination_class = PagePagination

    @extend_schema(
        tags=TAGS,
        operation_id="audit_log_list",
        summary="The organization's audit log, newest first",
        description="Owners and admins. Append-only: who did what, when, from where.",
        parameters=[AuditFilterSerializer],
        responses={200: AuditEntrySerializer(many=True)},
    )
    def get(self, request):
        filters = AuditFilterSerializer(data=request.query_params.dict())
        filters.is_valid(raise_exception=True)
        wanted = filters.validated_data
        entries = audit_entry_list_for_organization(
            organization=self.organization,
            action=wanted.get("action", ""),
            actor=wanted.get("actor", "").strip(),
            since=wanted.get("since"),
            until=wanted.get("until"),
        )
        return self.paginated(entries, AuditEntrySerializer)
