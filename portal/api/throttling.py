"""Rate limits per token, counted in the shared (Redis) cache. 429 with Retry-After."""

from rest_framework.permissions import SAFE_METHODS
from rest_framework.throttling import SimpleRateThrottle

from portal.api.conf import setting
from portal.api.models import ApiToken


class TokenRateThrottle(SimpleRateThrottle):
    """Every request of a token (API_RATE)."""

    scope = "api"
    rate_setting = "API_RATE"

    def get_rate(self) -> str:
        return setting(self.rate_setting)

    def get_cache_key(self, request, view) -> str | None:
        token = request.auth
        if not isinstance(token, ApiToken):
            return None
        return f"api:throttle:{self.scope}:{token.pk}"


class TokenWriteRateThrottle(TokenRateThrottle):
    """Writes of a token (API_WRITE_RATE), on top of the overall rate."""

    scope = "api_write"
    rate_setting = "API_WRITE_RATE"

    def allow_request(self, request, view) -> bool:
        if request.method in SAFE_METHODS:
            return True
        return super().allow_request(request, view)
