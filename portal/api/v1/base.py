"""The base of every API view: token authentication, scope and role, rate limits, JSON only."""

from typing import cast

from rest_framework.generics import GenericAPIView
from rest_framework.pagination import BasePagination

from portal.api.authentication import BearerTokenAuthentication
from portal.api.models import ApiToken
from portal.api.permissions import TokenPermission
from portal.api.throttling import TokenRateThrottle, TokenWriteRateThrottle
from portal.orgs.models import Membership, Organization


class ApiView(GenericAPIView):
    authentication_classes = [BearerTokenAuthentication]
    permission_classes = [TokenPermission]
    throttle_classes = [TokenRateThrottle, TokenWriteRateThrottle]
    pagination_class: type[BasePagination] | None = None
    metadata_class = None  # OPTIONS is a 405: no CORS, and the OpenAPI document describes all
    token_authenticated = True  # the schema adds 401/403/429 answers

    # Permissions of portal/orgs/roles.py for safe methods and for writes.
    read_permission: str | None = "org.view"
    write_permission: str | None = None
    # A service's error field -> the name of that field in this view's request body.
    field_names: dict[str, str] = {}
    # Answers besides 400/401/403/404/413/415/429 that this view gives (schema only).
    extra_error_codes: list[int] = []

    @property
    def membership(self) -> Membership:
        # BearerTokenAuthentication is the views' one authenticator, and TokenPermission refuses
        # a request without its token.
        return cast(ApiToken, self.request.auth).membership

    @property
    def organization(self) -> Organization:
        return self.membership.organization

    def validated(self, serializer_class, data=None) -> dict:
        serializer = serializer_class(data=self.request.data if data is None else data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    def paginated(self, queryset, serializer_class, *, prepare=None, **context):
        """One page of `queryset`, serialized; `prepare(rows)` first reads what the page's
        rows need beyond the query (prices, say) in one go, into the serializer's context."""
        page = self.paginate_queryset(queryset)
        if prepare is not None and page is not None:
            context.update(prepare(page))
        data = serializer_class(page, many=True, context=context).data
        return self.get_paginated_response(data)
