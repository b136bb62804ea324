"""The provider's OAuth2Validator: standard claims, and the faults of tests/oidc_provider."""

import json
import time

from django.db import router, transaction
from jwcrypto import jwk, jwt
from oauth2_provider.models import IDToken
from oauth2_provider.oauth2_validators import OAuth2Validator

from tests.oidc_provider import FAULTS

# A key of the same kind and id that the provider never publishes: a token signed with it
# has a bad signature for anyone who checks against the published keys.
_ROGUE_KEY = jwk.JWK.generate(kty="RSA", size=2048)


class FaultyValidator(OAuth2Validator):
    def get_additional_claims(self, request):
        user = request.user
        return {
            "email": user.email,
            "email_verified": user.username != "unverified",
            "name": user.get_full_name() or user.username,
            "preferred_username": user.username,
        }

    def finalize_id_token(self, id_token, token, token_handler, request):
        fault = request.user.username if request.user.username in FAULTS else ""
        if fault in ("", "unverified"):
            return super().finalize_id_token(id_token, token, token_handler, request)
        claims, expiration_time = self.get_id_token_dictionary(token, token_handler, request)
        id_token.update(**claims)
        if "nonce" not in id_token and request.nonce:
            id_token["nonce"] = request.nonce
        key = request.client.jwk_key
        header = {"typ": "JWT", "alg": "RS256", "kid": key.thumbprint()}
        if fault == "wrongaud":
            id_token["aud"] = "an-application-that-is-not-you"
        elif fault == "expired":
            now = int(time.time())
            id_token.update(iat=now - 7200, exp=now - 3600, auth_time=now - 7200)
        elif fault == "badsig":
            key = _ROGUE_KEY
        signed = jwt.JWT(header=json.dumps(header), claims=json.dumps(id_token, default=str))
        signed.make_signed_token(key)
        with transaction.atomic(using=router.db_for_write(IDToken)):
            saved = self._save_id_token(id_token["jti"], request, expiration_time)
        request.access_token = saved
        request.id_token = saved
        return signed.serialize()
