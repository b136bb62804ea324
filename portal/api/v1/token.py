"""Who am I: the token of the request, its organization and the role it acts with."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from portal.api.v1.base import ApiView
from portal.orgs.roles import PERMISSIONS, Role


class TokenInfoSerializer(serializers.Serializer):
    name = serializers.CharField()
    prefix = serializers.CharField(source="display_prefix")
    scopes = serializers.ListField(
        child=serializers.CharField(), help_text="e.g. instances:write, billing:read."
    )
    allowed_ips = serializers.ListField(
        child=serializers.CharField(), help_text="Networks it may be used from; empty: anywhere."
    )
    expires_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()


class OrganizationRefSerializer(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()


class WhoAmISerializer(serializers.Serializer):
    token = TokenInfoSerializer()
    organization = OrganizationRefSerializer()
    user = serializers.EmailField()
    role = serializers.ChoiceField(choices=Role.choices)
    permissions = serializers.ListField(
        child=serializers.CharField(),
        help_text="What the role allows; the token's scopes narrow it further.",
    )


class TokenInfo(ApiView):
    @extend_schema(
        tags=["Token"],
        operation_id="token_get",
        summary="The token of this request, its organization and your role",
        responses={200: WhoAmISerializer},
    )
    def get(self, request):
        membership = self.membership
        data = {
            "token": request.auth,
            "organization": membership.organization,
            "user": membership.user.email,
            "role": membership.role,
            "permissions": sorted(p for p in PERMISSIONS if membership.can(p)),
        }
        return Response(WhoAmISerializer(data).data)
