"""API tokens: list and revoke. Members see and revoke their own; owners and admins every
token of the organization (the same rule as the API page).

Tokens are created on the API page only, by a person signed in to the console: a token never
mints another token, so a leaked token cannot outlive its own revocation.
"""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from portal.api import selectors, services
from portal.api.fields import NoFieldsSerializer
from portal.api.v1.base import ApiView

TAGS = ["Token"]


class ApiTokenSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    prefix = serializers.CharField(source="display_prefix")
    scopes = serializers.ListField(child=serializers.CharField())
    allowed_ips = serializers.ListField(
        child=serializers.CharField(), help_text="Networks it may be used from; empty: anywhere."
    )
    owner = serializers.EmailField(source="user.email")
    status = serializers.ChoiceField(choices=["active", "expired", "revoked"])
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(allow_null=True)
    last_used_at = serializers.DateTimeField(allow_null=True)
    last_used_ip = serializers.IPAddressField(allow_null=True, help_text="Where it was last used.")
    revoked_at = serializers.DateTimeField(allow_null=True)
    this_token = serializers.SerializerMethodField(help_text="Whether it is the token in use.")

    def get_this_token(self, token) -> bool:
        return token.pk == self.context.get("current_id")


class ApiTokenList(ApiView):
    api_area = "tokens"

    @extend_schema(
        tags=TAGS,
        operation_id="tokens_list",
        summary="API tokens, newest first",
        description="Yours; owners and admins see every token of the organization.",
        responses={200: ApiTokenSerializer(many=True)},
    )
    def get(self, request):
        tokens = selectors.api_token_list_for_member(membership=self.membership)
        context = {"current_id": request.auth.pk}
        return Response(ApiTokenSerializer(tokens, many=True, context=context).data)


class ApiTokenDetail(ApiView):
    api_area = "tokens"

    @extend_schema(
        tags=TAGS,
        operation_id="tokens_get",
        summary="One API token",
        responses={200: ApiTokenSerializer},
    )
    def get(self, request, pk: int):
        token = selectors.api_token_get_for_member(membership=self.membership, pk=pk)
        return Response(ApiTokenSerializer(token, context={"current_id": request.auth.pk}).data)


class ApiTokenRevoke(ApiView):
    api_area = "tokens"
    write_permission = "org.view"

    @extend_schema(
        tags=TAGS,
        operation_id="tokens_revoke",
        summary="Revoke an API token",
        description="It stops working at once, this very token included. Revoking a revoked "
        "token changes nothing.",
        request=None,
        responses={200: ApiTokenSerializer},
    )
    def post(self, request, pk: int):
        self.validated(NoFieldsSerializer, data=request.data or {})
        token = selectors.api_token_get_for_member(membership=self.membership, pk=pk)
        token = services.api_token_revoke(membership=self.membership, token=token)
        return Response(ApiTokenSerializer(token, context={"current_id": request.auth.pk}).data)
