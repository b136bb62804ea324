"""Page-number pagination: ?page=2&page_size=50. A page past the end is empty, not an error."""

from urllib.parse import urlencode

from rest_framework.pagination import BasePagination
from rest_framework.response import Response

from portal.api.conf import setting
from portal.api.errors import ApiError

MAX_PAGE = 1_000_000


def _positive(request, name: str, default: int, highest: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= highest:
        raise ApiError(
            f"{name} must be a whole number from 1 to {highest}.",
            code="invalid_parameter",
            details={name: [f"A whole number from 1 to {highest}."]},
        )
    return int(raw)


class PagePagination(BasePagination):
    def paginate_queryset(self, queryset, request, view=None):
        self.request = request
        self.page_size = _positive(
            request, "page_size", setting("API_PAGE_SIZE"), setting("API_MAX_PAGE_SIZE")
        )
        self.page = _positive(request, "page", 1, MAX_PAGE)
        self.count = queryset.count()
        start = (self.page - 1) * self.page_size
        return list(queryset[start : start + self.page_size])

    def _link(self, page: int) -> str:
        query = self.request.query_params.copy()
        query["page"] = str(page)
        return self.request.build_absolute_uri(
            f"{self.request.path}?{urlencode(sorted(query.items()))}"
        )

    def get_paginated_response(self, data) -> Response:
        last = max(1, -(-self.count // self.page_size))
        return Response(
            {
                "count": self.count,
                "page": self.page,
                "page_size": self.page_size,
                "next": self._link(self.page + 1) if self.page < last else None,
                "previous": self._link(min(self.page - 1, last)) if self.page > 1 else None,
                "results": data,
            }
        )

    def get_paginated_response_schema(self, schema: dict) -> dict:
        return {
            "type": "object",
            "required": ["count", "page", "page_size", "next", "previous", "results"],
            "properties": {
                "count": {"type": "integer", "minimum": 0},
                "page": {"type": "integer", "minimum": 1},
                "page_size": {"type": "integer", "minimum": 1},
                "next": {"type": "string", "format": "uri", "nullable": True},
                "previous": {"type": "string", "format": "uri", "nullable": True},
                "results": schema,
            },
        }

    def get_schema_operation_parameters(self, view) -> list[dict]:
        return [
            {
                "name": "page",
                "in": "query",
                "required": False,
                "description": "Page number, from 1. A page past the end is empty.",
                "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
            },
            {
                "name": "page_size",
                "in": "query",
                "required": False,
                "description": f"Results per page (default {setting('API_PAGE_SIZE')}).",
                "schema": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": setting("API_MAX_PAGE_SIZE"),
                },
            },
        ]
