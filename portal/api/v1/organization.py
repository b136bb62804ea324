"""The organization, its members and its invitations.

Rules live in portal.orgs: the same selectors and services as the members and settings pages
(who may invite, the last owner, the roles one may hand out).
"""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from portal.api.fields import (
    NoFieldsSerializer,
    StrictCharField,
    StrictChoiceField,
    StrictEmailField,
    StrictSerializer,
)
from portal.api.idempotency import PARAMETER as IDEMPOTENCY_PARAMETER
from portal.api.idempotency import idempotent
from portal.api.pagination import PagePagination
from portal.api.v1.base import ApiView
from portal.orgs import selectors, services
from portal.orgs.roles import PERMISSIONS, Role
from portal.orgs.services import NAME_MAX_LENGTH

TAGS = ["Organization"]


class OrganizationSerializer(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()
    created_at = serializers.DateTimeField()
    role = serializers.ChoiceField(choices=Role.choices, help_text="Your role in it.")
    permissions = serializers.ListField(
        child=serializers.CharField(), help_text="What your role allows."
    )
    members = serializers.IntegerField(help_text="How many members it has.")


class OrganizationUpdateSerializer(StrictSerializer):
    name = StrictCharField(max_length=NAME_MAX_LENGTH, required=False)


class MemberSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="The membership's id.")
    email = serializers.EmailField(source="user.email")
    name = serializers.CharField(source="user.full_name")
    role = serializers.ChoiceField(choices=Role.choices)
    joined_at = serializers.DateTimeField(source="created_at")
    you = serializers.SerializerMethodField(help_text="Whether this is the token's owner.")

    def get_you(self, membership) -> bool:
        return membership.user_id == self.context.get("user_id")


class MemberUpdateSerializer(StrictSerializer):
    role = StrictChoiceField(choices=Role.choices, required=False)


class InvitationSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    email = serializers.EmailField()
    role = serializers.ChoiceField(choices=Role.choices)
    status = serializers.ChoiceField(choices=["pending", "accepted", "revoked", "expired"])
    invited_by = serializers.EmailField(source="invited_by.email", allow_null=True)
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()


class InvitationCreateSerializer(StrictSerializer):
    email = StrictEmailField(max_length=254)
    role = StrictChoiceField(choices=Role.choices, help_text="Admins cannot invite owners.")


def _organization_data(membership) -> dict:
    organization = membership.organization
    return {
        "slug": organization.slug,
        "name": organization.name,
        "created_at": organization.created_at,
        "role": membership.role,
        "permissions": sorted(p for p in PERMISSIONS if membership.can(p)),
        "members": organization.memberships.count(),
    }


class OrganizationDetail(ApiView):
    api_area = "organization"
    read_permission = "org.view"
    write_permission = "org.rename"

    @extend_schema(
        tags=TAGS,
        operation_id="organization_get",
        summary="The token's organization and your role in it",
        responses={200: OrganizationSerializer},
    )
    def get(self, request):
        return Response(OrganizationSerializer(_organization_data(self.membership)).data)

    @extend_schema(
        tags=TAGS,
        operation_id="organization_update",
        summary="Rename the organization",
        description="Owners and admins. The slug (in URLs) stays.",
        request=OrganizationUpdateSerializer,
        responses={200: OrganizationSerializer},
    )
    def patch(self, request):
        data = self.validated(OrganizationUpdateSerializer)
        if "name" in data:
            services.organization_rename(
                organization=self.organization, name=data["name"], actor=self.membership
            )
        return Response(OrganizationSerializer(_organization_data(self.membership)).data)


class MemberList(ApiView):
    api_area = "members"
    read_permission = "members.view"

    @extend_schema(
        tags=TAGS,
        operation_id="members_list",
        summary="Members of the organization, by e-mail",
        responses={200: MemberSerializer(many=True)},
    )
    def get(self, request):
        members = selectors.membership_list_for_organization(organization=self.organization)
        context = {"user_id": self.membership.user_id}
        return Response(MemberSerializer(members, many=True, context=context).data)


class MemberDetail(ApiView):
    api_area = "members"
    read_permission = "members.view"
    # Owners change roles and remove people (anyone leaves at /membership/).
    write_permission = "members.manage"
    extra_error_codes = [409]

    def _member(self, pk: int):
        return selectors.membership_get_for_organization(organization=self.organization, pk=pk)

    def _data(self, membership) -> dict:
        return MemberSerializer(membership, context={"user_id": self.membership.user_id}).data

    @extend_schema(
        tags=TAGS,
        operation_id="members_get",
        summary="One member",
        responses={200: MemberSerializer},
    )
    def get(self, request, pk: int):
        return Response(self._data(self._member(pk)))

    @extend_schema(
        tags=TAGS,
        operation_id="members_update",
        summary="Change a member's role",
        description="Owners only. The last owner cannot be demoted (409 last_owner).",
        request=MemberUpdateSerializer,
        responses={200: MemberSerializer},
    )
    def patch(self, request, pk: int):
        membership = self._member(pk)
        data = self.validated(MemberUpdateSerializer)
        if "role" in data:
            membership = services.membership_change_role(
                actor=self.membership, membership=membership, role=data["role"]
            )
        return Response(self._data(membership))

    @extend_schema(
        tags=TAGS,
        operation_id="members_remove",
        summary="Remove a member",
        description="Owners only (anyone may leave: DELETE /membership/). The last owner "
        "cannot be removed (409 last_owner).",
        responses={204: None},
    )
    def delete(self, request, pk: int):
        membership = self._member(pk)
        services.membership_remove(actor=self.membership, membership=membership)
        return Response(status=status.HTTP_204_NO_CONTENT)


class InvitationList(ApiView):
    api_area = "members"
    read_permission = "members.view"
    write_permission = "members.invite"
    extra_error_codes = [409]
    pagination_class = PagePagination

    @extend_schema(
        tags=TAGS,
        operation_id="invitations_list",
        summary="Open invitations (pending or expired), newest first",
        responses={200: InvitationSerializer(many=True)},
    )
    def get(self, request):
        invitations = selectors.invitation_list_open_for_organization(
            organization=self.organization
        ).order_by("-created_at", "-id")
        return self.paginated(invitations, InvitationSerializer)

    @extend_schema(
        tags=TAGS,
        operation_id="invitations_create",
        summary="Invite someone by e-mail",
        description="Owners and admins. The invitation link goes by e-mail only; it is never "
        "in the answer.",
        parameters=[IDEMPOTENCY_PARAMETER],
        request=InvitationCreateSerializer,
        responses={201: InvitationSerializer},
    )
    def post(self, request):
        return idempotent(self, request, lambda: self._create(request))

    def _create(self, request) -> Response:
        data = self.validated(InvitationCreateSerializer)
        invitation, _token = services.invitation_create(
            actor=self.membership, email=data["email"], role=data["role"]
        )
        return Response(InvitationSerializer(invitation).data, status=status.HTTP_201_CREATED)


class InvitationDetail(ApiView):
    api_area = "members"
    read_permission = "members.view"

    @extend_schema(
        tags=TAGS,
        operation_id="invitations_get",
        summary="One invitation",
        responses={200: InvitationSerializer},
    )
    def get(self, request, pk: int):
        invitation = selectors.invitation_get_for_organization(
            organization=self.organization, pk=pk
        )
        return Response(InvitationSerializer(invitation).data)


class InvitationAction(ApiView):
    api_area = "members"
    read_permission = "members.view"
    write_permission = "members.invite"
    extra_error_codes = [409]

    def _invitation(self, pk: int):
        self.validated(NoFieldsSerializer, data=self.request.data or {})
        return selectors.invitation_get_for_organization(organization=self.organization, pk=pk)

    def _answer(self, pk: int) -> Response:
        invitation = selectors.invitation_get_for_organization(
            organization=self.organization, pk=pk
        )
        return Response(InvitationSerializer(invitation).data)


class InvitationResend(InvitationAction):
    @extend_schema(
        tags=TAGS,
        operation_id="invitations_resend",
        summary="Send an open invitation again",
        description="A new link (the old one stops working) and a new expiry.",
        request=None,
        responses={200: InvitationSerializer},
    )
    def post(self, request, pk: int):
        services.invitation_resend(actor=self.membership, invitation=self._invitation(pk))
        return self._answer(pk)


class InvitationRevoke(InvitationAction):
    @extend_schema(
        tags=TAGS,
        operation_id="invitations_revoke",
        summary="Revoke an open invitation",
        request=None,
        responses={200: InvitationSerializer},
    )
    def post(self, request, pk: int):
        services.invitation_revoke(actor=self.membership, invitation=self._invitation(pk))
        return self._answer(pk)


class MembershipSelf(ApiView):
    api_area = "membership"
    read_permission = "org.view"
    write_permission = "org.view"
    extra_error_codes = [409]

    @extend_schema(
        tags=TAGS,
        operation_id="membership_get",
        summary="Your own membership",
        responses={200: MemberSerializer},
    )
    def get(self, request):
        membership = self.membership
        return Response(MemberSerializer(membership, context={"user_id": membership.user_id}).data)

    @extend_schema(
        tags=TAGS,
        operation_id="membership_leave",
        summary="Leave the organization",
        description="Every role may leave (the scope membership:write). The last owner cannot "
        "(409 last_owner). This token, and every other of yours there, stops working.",
        responses={204: None},
    )
    def delete(self, request):
        services.membership_remove(actor=self.membership, membership=self.membership)
        return Response(status=status.HTTP_204_NO_CONTENT)
