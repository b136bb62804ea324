"""The OpenAPI description: the bearer security scheme, the error shape on every operation,
closed request bodies, and the Retry-After header of 429 answers.

Loaded from ApiConfig.ready() so that drf-spectacular finds the authentication extension.
"""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers

from portal.lib.apitoken import SCHEME


class ErrorSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Machine-readable, e.g. validation_error, not_found.")
    message = serializers.CharField(help_text="What went wrong, for a person.")
    details = serializers.DictField(
        required=False,
        help_text='Field errors ({"name": ["…"]}) or facts about the refusal.',
    )


class ErrorResponseSerializer(serializers.Serializer):
    error = ErrorSerializer()

    class Meta:
        ref_name = "ErrorResponse"


ERROR_DESCRIPTIONS = {
    400: "Bad input: malformed JSON, wrong types, unknown fields (code unknown_field), or a "
    "rule of the service said no.",
    401: "No token, or a token that is invalid, revoked (token_revoked), expired "
    "(token_expired) or whose owner left the organization (token_inactive).",
    403: "The token's scopes do not include this area and action (insufficient_scope), it is "
    "used from an address it does not allow (ip_not_allowed), or the owner's role does not "
    "allow this (forbidden).",
    404: "No such object in the token's organization (another organization's ids included).",
    406: "The Accept header asks for something other than JSON, the only format answered.",
    409: "The request conflicts with the current state: an illegal state change, a quota "
    "exceeded, a duplicate, or an Idempotency-Key reused with another body.",
    413: "The request body is too large.",
    415: "Send JSON (Content-Type: application/json).",
    429: "Too many requests for this token; see Retry-After.",
}


def error_response(status: int) -> OpenApiResponse:
    return OpenApiResponse(ErrorResponseSerializer, description=ERROR_DESCRIPTIONS[status])


class ApiAutoSchema(AutoSchema):
    """Adds the error answers every operation can give; views add 409 where it applies."""

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if not getattr(self.view, "token_authenticated", False):
            return responses
        codes = [400, 401, 403, 406, 429]
        if "{" in self.path:
            codes.append(404)
        if self.method in ("POST", "PUT", "PATCH", "DELETE"):
            codes += [413, 415]
        codes += getattr(self.view, "extra_error_codes", [])
        for code in sorted(set(codes)):
            if str(code) not in responses:
                responses[str(code)] = self._get_response_for_code(
                    error_response(code), str(code), direction=direction
                )
        return responses


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "portal.api.authentication.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": f"{SCHEME}_<prefix>_<secret>",
            "description": "A token from the API page of your organization, e.g. "
            "`Authorization: Bearer bf_1a2b3c4d_…`. It acts in that organization with your role, "
            "narrowed by its scopes (e.g. instances:write, billing:read) and, if set, its "
            "allowed addresses.",
        }


def postprocess(result, generator, request, public):
    """drf-spectacular hook: request bodies are closed objects; 429 documents Retry-After."""
    schemas = result.get("components", {}).get("schemas", {})
    for name, schema in schemas.items():
        if name.endswith("Request") and schema.get("type") == "object":
            schema["additionalProperties"] = False
    for path in result.get("paths", {}).values():
        for operation in path.values():
            if not isinstance(operation, dict):
                continue
            throttled = operation.get("responses", {}).get("429")
            if throttled is not None:
                throttled["headers"] = {
                    "Retry-After": {
                        "description": "Seconds to wait before the next request.",
                        "schema": {"type": "integer", "minimum": 1},
                        "required": True,
                    }
                }
    return result
