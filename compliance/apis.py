"""The screening REST API (DRF), thin: ``POST /api/screening/search`` searches the sanctions lists.

Shares the merchant API's machinery (``payments.apis.MerchantAPIView``): API-key authentication,
the per-key throttle, strict JSON with a body-size limit and the JSON error handler. The key's
user needs ``compliance.use_screening_api``. Each search is audited with a SHA-256 of the name.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response

from payments.api_models import ApiKey
from payments.apis import MerchantAPIView, _errors

from .serializers import ScreeningSearchResponseSerializer, ScreeningSearchSerializer
from .services import SearchResult, screening_search

SCREENING_API_PERMISSION = "compliance.use_screening_api"


class CanUseScreeningAPI(BasePermission):
    """An authenticated API key whose user holds ``compliance.use_screening_api``."""

    message = f"This API key's user may not use the screening API (it needs the {SCREENING_API_PERMISSION} permission)."
    code = "not_allowed"

    def has_permission(self, request: Request, view: Any) -> bool:
        if not isinstance(request.auth, ApiKey):
            return False
        return bool(request.user.is_active and request.user.has_perm(SCREENING_API_PERMISSION))


def _result(result: SearchResult) -> dict[str, Any]:
    match, entity = result.match, result.entity
    return {
        "source": match.source,
        "key": match.key,
        "primary_name": entity.primary_name,
        "matched_name": match.matched_name,
        "matched_name_kind": str(match.matched_name_kind),
        "score": round(float(match.score), 4),
        "explanation": match.explanation,
        "entity": {
            "type": str(entity.entity_type),
            "programs": list(entity.programs),
            "dates_of_birth": list(entity.dates_of_birth),
            "nationalities": list(entity.nationalities),
            "countries": list(entity.countries),
        },
    }


class ScreeningSearchAPI(MerchantAPIView):
    permission_classes = [CanUseScreeningAPI]

    @extend_schema(
        operation_id="screening_search",
        summary="Screen a name against the sanctions lists",
        description=(
            "Searches the active OFAC SDN and UN lists for `name` and answers the best-scored entities, best "
            "first, each with the name that matched, a score in [0, 1] and how it was reached. Only entities "
            "scoring at or above the configured threshold of their list and type are returned. A date of "
            "birth, a country and a type refine the scores. Nothing is stored but an audit entry with a "
            "SHA-256 of the name. Needs the `compliance.use_screening_api` permission."
        ),
        request=ScreeningSearchSerializer,
        responses={200: ScreeningSearchResponseSerializer, **_errors(400, 401, 403, 413, 415, 429)},
        examples=[
            OpenApiExample(
                "A person",
                value={"name": "Jane Example", "date_of_birth": "1970-01-31", "country": "GB", "type": "individual"},
                request_only=True,
            )
        ],
        tags=["screening"],
    )
    def post(self, request: Request) -> Response:
        serializer = ScreeningSearchSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        values = serializer.validated_data
        results = screening_search(
            name=values["name"],
            date_of_birth=values.get("date_of_birth"),
            country=values.get("country", ""),
            entity_type=values.get("type"),
            limit=values.get("limit", 10),
            actor=request.user,
            request=request._request,
        )
        return Response({"results": [_result(result) for result in results]})
