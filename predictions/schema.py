"""OpenAPI (drf-spectacular) security schemes for the data-plane authenticators.

Lives here because the keys app has none; imported from `PredictionsConfig.ready()`.
"""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object


class ApiKeyScheme(OpenApiAuthenticationExtension):
    """`X-API-Key: mlk_<prefix>.<secret>` (keys.authentication.ApiKeyAuthentication)."""

    target_class = "keys.authentication.ApiKeyAuthentication"
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "X-API-Key",
            "description": "An API key `mlk_<prefix>.<secret>`, created in the portal or "
            "with POST /api/v1/keys; shown once.",
        }


class SubscriberJWTScheme(OpenApiAuthenticationExtension):
    """`Authorization: Bearer <access>` (keys.authentication.SubscriberJWTAuthentication)."""

    target_class = "keys.authentication.SubscriberJWTAuthentication"
    name = "JWTAuth"

    def get_security_definition(self, auto_schema):
        return build_bearer_security_scheme_object("Authorization", "Bearer", "JWT")
