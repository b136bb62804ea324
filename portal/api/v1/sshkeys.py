"""SSH keys: list, add, get, delete. Rules live in portal.sshkeys (services and selectors)."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from portal.api.fields import StrictBooleanField, StrictCharField, StrictSerializer
from portal.api.v1.base import ApiView
from portal.sshkeys import selectors, services
from portal.sshkeys.models import NAME_MAX_LENGTH

TAGS = ["SSH keys"]


class SshKeySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    key_type = serializers.CharField(help_text="ssh-ed25519, ecdsa-sha2-nistp256, ssh-rsa, …")
    bits = serializers.IntegerField()
    fingerprint = serializers.CharField(help_text="SHA256, as ssh-keygen -l shows it.")
    public_key = serializers.CharField()
    shared = serializers.BooleanField(source="is_shared")
    owner = serializers.EmailField(
        source="user.email", allow_null=True, help_text="null for a shared key."
    )
    created_at = serializers.DateTimeField()


class SshKeyCreateSerializer(StrictSerializer):
    name = StrictCharField(max_length=NAME_MAX_LENGTH)
    public_key = StrictCharField(
        max_length=8192, help_text="One line of a .pub file: Ed25519, ECDSA or RSA ≥ 2048 bits."
    )
    shared = StrictBooleanField(
        required=False,
        default=False,
        help_text="Share with the whole organization (owners and admins only).",
    )


class SshKeyList(ApiView):
    read_permission = "instances.view"
    write_permission = "instances.manage"
    extra_error_codes = [409]

    @extend_schema(
        tags=TAGS,
        operation_id="ssh_keys_list",
        summary="SSH keys you can put on instances",
        description="Shared keys and your personal keys; owners and admins see every key.",
        responses={200: SshKeySerializer(many=True)},
    )
    def get(self, request):
        keys = selectors.sshkey_list_for_member(membership=self.membership)
        return Response(SshKeySerializer(keys, many=True).data)

    @extend_schema(
        tags=TAGS,
        operation_id="ssh_keys_create",
        summary="Add an SSH key",
        request=SshKeyCreateSerializer,
        responses={201: SshKeySerializer},
    )
    def post(self, request):
        data = self.validated(SshKeyCreateSerializer)
        key = services.sshkey_add(
            membership=self.membership,
            name=data["name"],
            public_key=data["public_key"],
            shared=data["shared"],
        )
        return Response(SshKeySerializer(key).data, status=status.HTTP_201_CREATED)


class SshKeyDetail(ApiView):
    read_permission = "instances.view"
    write_permission = "instances.manage"

    @extend_schema(
        tags=TAGS,
        operation_id="ssh_keys_get",
        summary="One SSH key",
        responses={200: SshKeySerializer},
    )
    def get(self, request, pk: int):
        key = selectors.sshkey_get_for_member(membership=self.membership, pk=pk)
        return Response(SshKeySerializer(key).data)

    @extend_schema(
        tags=TAGS,
        operation_id="ssh_keys_delete",
        summary="Delete an SSH key",
        description="Running instances keep it until they end; it is no longer offered for "
        "launches. Members delete their own keys; owners and admins any key.",
        responses={204: None},
    )
    def delete(self, request, pk: int):
        key = selectors.sshkey_get_for_member(membership=self.membership, pk=pk)
        services.sshkey_delete(membership=self.membership, key=key)
        return Response(status=status.HTTP_204_NO_CONTENT)
