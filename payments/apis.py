"""The merchant REST API (DRF), thin: parse, check, call one service in ``payments.checkout``, answer.

Shared behaviour lives in ``MerchantAPIView``: API-key authentication, the merchant permission,
the per-key throttle, strict JSON parsing with a body-size limit, ``Idempotency-Key`` handling
for every POST, and one exception handler (``api_exception_handler``) that turns every error
into JSON ``{"error": {"code", "message", ...}}`` with a 4xx status (a 5xx only when a gateway is
unreachable, or for a bug). docs/api.md describes the API for merchants.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import logging
import math
import re
from collections.abc import Callable
from typing import Any

from csp.constants import NONCE
from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.template import engines
from django.templatetags.static import static
from django.urls import reverse
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from drf_spectacular.views import SpectacularSwaggerSplitView
from rest_framework import exceptions, serializers, status
from rest_framework.pagination import CursorPagination
from rest_framework.parsers import JSONParser
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView, set_rollback

from fintech.core.exceptions import ApplicationError, InvalidTransition, NotAllowed, ValidationFailed
from fintech.core.money import MoneyError, currency_code

from .authentication import ApiKeyAuthentication, ApiKeyRateThrottle, IsMerchant
from .checkout import (
    IdempotencyClaim,
    IdempotencyReplay,
    checkout_payment_create,
    checkout_refund_create,
    idempotency_begin,
    idempotency_finish,
    idempotency_release,
    idempotency_request_hash,
    merchant_customer_create,
    merchant_payment_get,
    merchant_payments,
)
from .gateways import GatewayError
from .serializers import (
    CustomerCreateSerializer,
    CustomerSerializer,
    ErrorSerializer,
    PaymentCreateSerializer,
    PaymentListQuerySerializer,
    PaymentSerializer,
    RefundCreateSerializer,
    RefundSerializer,
)

logger = logging.getLogger("fintech.payments.api")

# ----------------------------------------------------------------------------------- errors

_CORE_ERROR_CODES: dict[type[ApplicationError], str] = {
    ValidationFailed: "invalid_request",
    NotAllowed: "not_allowed",
    InvalidTransition: "invalid_state",
}


def _application_error_code(error: ApplicationError) -> str:
    code = getattr(error, "code", None)
    if isinstance(code, str):
        return code
    for cls in type(error).__mro__:
        if cls in _CORE_ERROR_CODES:
            return _CORE_ERROR_CODES[cls]
    return "request_refused"


def _error(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **{k: v for k, v in extra.items() if v is not None}}}


def _validation_body(error: exceptions.ValidationError) -> dict[str, Any]:
    detail = error.detail
    if isinstance(detail, dict):
        fields = {str(name): _messages(messages) for name, messages in detail.items()}
        first_field, first_messages = next(iter(fields.items()))
        field = None if first_field == "non_field_errors" else first_field
        prefix = f"{first_field}: " if field else ""
        return _error("invalid_request", f"{prefix}{first_messages[0]}", field=field, fields=fields)
    messages = _messages(detail)
    return _error("invalid_request", messages[0] if messages else "Invalid request.")


def _messages(detail: Any) -> list[str]:
    if isinstance(detail, list):
        return [message for item in detail for message in _messages(item)]
    if isinstance(detail, dict):
        return [f"{name}: {message}" for name, item in detail.items() for message in _messages(item)]
    return [str(detail)]


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """Every error of the API as JSON ``{"error": {"code", "message", ...}}`` (REST_FRAMEWORK setting)."""
    headers: dict[str, str] = {}
    if isinstance(exc, ApplicationError):
        status_code = exc.status_code
        body = _error(_application_error_code(exc), exc.message, field=exc.field, **getattr(exc, "extra", {}))
    elif isinstance(exc, GatewayError):
        status_code = status.HTTP_503_SERVICE_UNAVAILABLE if exc.retryable else status.HTTP_502_BAD_GATEWAY
        body = _error("gateway_unavailable" if exc.retryable else "gateway_error", str(exc))
    elif isinstance(exc, MoneyError):
        status_code, body = status.HTTP_400_BAD_REQUEST, _error("invalid_request", str(exc))
    elif isinstance(exc, Http404 | ObjectDoesNotExist):
        status_code, body = status.HTTP_404_NOT_FOUND, _error("not_found", "Not found.")
    elif isinstance(exc, DjangoPermissionDenied):
        status_code, body = status.HTTP_403_FORBIDDEN, _error("not_allowed", str(exc) or "Not allowed.")
    elif isinstance(exc, exceptions.ValidationError):
        status_code, body = status.HTTP_400_BAD_REQUEST, _validation_body(exc)
    elif isinstance(exc, exceptions.APIException):
        status_code = exc.status_code
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else exc.default_code
        message = " ".join(_messages(exc.detail))
        if isinstance(exc, exceptions.NotAuthenticated):
            message = "Authentication required: send 'Authorization: Bearer <API key>'."
        elif isinstance(exc, exceptions.ParseError):
            code = "malformed_request"
        body = _error(str(code), message)
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = str(exc.auth_header)
        if getattr(exc, "wait", None) is not None:
            headers["Retry-After"] = str(math.ceil(exc.wait))
    else:
        logger.exception("merchant API: unexpected error", exc_info=exc)
        status_code = status.HTTP_500_INTERNAL_SERVER_ERROR
        body = _error("internal_error", "An unexpected error occurred; it has been logged.")
    set_rollback()
    return Response(body, status=status_code, headers=headers)


class RequestTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "request_too_large"


# ------------------------------------------------------------------------------- parsing


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _contains_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_contains_nul(key) or _contains_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_contains_nul(item) for item in value)
    return False


class StrictJSONParser(JSONParser):
    """JSON bodies only, at most ``API_MAX_BODY_BYTES``; duplicate keys, NaN/Infinity and NUL
    characters (which PostgreSQL text cannot hold) are refused with 400."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: dict | None = None) -> Any:
        limit = settings.API_MAX_BODY_BYTES
        raw = stream.read(limit + 1)
        if len(raw) > limit:
            raise RequestTooLarge(f"The request body is larger than {limit} bytes.")
        try:
            data = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constants)
        except (ValueError, UnicodeDecodeError) as error:
            raise exceptions.ParseError(f"The body is not valid JSON: {error}") from None
        if _contains_nul(data):
            raise exceptions.ParseError("The body must not contain NUL characters.")
        return data


# ---------------------------------------------------------------------------------- base view


class MerchantAPIView(APIView):
    """API key, merchant permission, per-key throttle, strict JSON, idempotent POSTs."""

    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [IsMerchant]
    throttle_classes = [ApiKeyRateThrottle]
    parser_classes = [StrictJSONParser]
    renderer_classes = [JSONRenderer]
    idempotency_claim: IdempotencyClaim | None = None

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > settings.API_MAX_BODY_BYTES:
            raise RequestTooLarge(f"The request body is larger than {settings.API_MAX_BODY_BYTES} bytes.")
        super().initial(request, *args, **kwargs)

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        response = super().finalize_response(request, response, *args, **kwargs)
        claim, self.idempotency_claim = self.idempotency_claim, None
        if claim is not None:
            response.render()
            if 400 <= response.status_code < 500:
                # Refused before anything was written: the same key may be sent again.
                idempotency_release(claim=claim)
            else:
                idempotency_finish(claim=claim, status_code=response.status_code, body=response.content.decode())
        return response


Handler = Callable[..., Any]


def idempotent(handler: Handler) -> Handler:
    """A POST runs once per Idempotency-Key; a repeat gets the first answer, byte for byte."""

    @functools.wraps(handler)
    def wrapper(self: MerchantAPIView, request: Request, *args: Any, **kwargs: Any) -> Any:
        body = request.data  # a malformed body is refused here, before the key is claimed
        outcome = idempotency_begin(
            user=request.user,
            key=request.headers.get("Idempotency-Key"),
            method=request.method or "POST",
            path=request.path,
            request_hash=idempotency_request_hash(method=request.method or "POST", path=request.path, body=body),
        )
        if isinstance(outcome, IdempotencyReplay):
            replay = HttpResponse(outcome.body, status=outcome.status_code, content_type="application/json")
            replay["Idempotent-Replayed"] = "true"
            return replay
        self.idempotency_claim = outcome
        return handler(self, request, *args, **kwargs)

    return wrapper


def _valid(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any]:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


# ----------------------------------------------------------------------------------- schema


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "payments.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "fk_live_… / fk_test_… API key",
            "description": "An API key made with `manage.py create_api_key`, sent as `Authorization: Bearer <key>`.",
        }


IDEMPOTENCY_KEY = OpenApiParameter(
    name="Idempotency-Key",
    type=str,
    location=OpenApiParameter.HEADER,
    required=True,
    description=(
        "Required on every POST: a unique string (a UUID), at most 255 characters. Repeating a request with "
        "the same key and body returns the first response (header Idempotent-Replayed: true) and does nothing "
        "again; the same key with another body is refused with 422; while the first request runs, 409. "
        "Keys are kept 24 hours."
    ),
)


def _errors(*codes: int) -> dict[int, OpenApiResponse]:
    descriptions = {
        400: "Invalid input (invalid_request, malformed_request, idempotency_key_invalid).",
        401: "Missing, unknown or revoked API key.",
        403: "The key's user may not use the merchant API.",
        404: "No such payment among yours.",
        409: "Not possible in the payment's state, or a request with this Idempotency-Key is still running.",
        413: "Body larger than API_MAX_BODY_BYTES.",
        415: "Body is not application/json.",
        422: "Refund larger than the refundable amount, or Idempotency-Key reused with another request.",
        429: "Too many requests for this API key (Retry-After header).",
        503: "The gateway could not be reached; the payment or refund stays pending (its id is in the error).",
    }
    return {code: OpenApiResponse(ErrorSerializer, description=descriptions[code]) for code in codes}


_COMMON_ERRORS = (401, 403, 429)
_POST_ERRORS = (400, 401, 403, 409, 413, 415, 422, 429, 503)


class PaymentPageSerializer(serializers.Serializer):
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = PaymentSerializer(many=True)


class PaymentPagination(CursorPagination):
    """Newest first; the cursor is opaque and stable while new payments arrive."""

    ordering = ("-created_at", "-pk")
    page_size = 25
    page_size_query_param = "limit"
    max_page_size = 100


# ------------------------------------------------------------------------------------ views


class PaymentListCreateAPI(MerchantAPIView):
    @extend_schema(
        operation_id="payments_list",
        summary="List your payments",
        parameters=[PaymentListQuerySerializer],
        responses={200: PaymentPageSerializer, **_errors(400, *_COMMON_ERRORS)},
        tags=["payments"],
    )
    def get(self, request: Request) -> Response:
        filters = _valid(PaymentListQuerySerializer, request.query_params)
        payments = merchant_payments(merchant=request.user)
        if "status" in filters:
            payments = payments.filter(status=filters["status"])
        if "currency" in filters:
            try:
                payments = payments.filter(currency=currency_code(filters["currency"]))
            except MoneyError as error:
                raise ValidationFailed(str(error), field="currency") from None
        if "created_gte" in filters:
            payments = payments.filter(created_at__gte=filters["created_gte"])
        if "created_lt" in filters:
            payments = payments.filter(created_at__lt=filters["created_lt"])
        paginator = PaymentPagination()
        page = paginator.paginate_queryset(payments, request, view=self)
        return paginator.get_paginated_response(PaymentSerializer(page, many=True).data)

    @extend_schema(
        operation_id="payments_create",
        summary="Create a payment",
        description=(
            "Creates the payment, charges it through the gateway and answers 201 with the outcome: "
            "`succeeded`, `failed` (a decline, with `failure_code` such as `insufficient_funds` or "
            "Braintree's `2001`), `requires_action` or `requires_capture`. A decline is a 201 too: the payment "
            "exists, with status `failed`."
        ),
        request=PaymentCreateSerializer,
        parameters=[IDEMPOTENCY_KEY],
        responses={201: PaymentSerializer, **_errors(*_POST_ERRORS)},
        examples=[
            OpenApiExample(
                "Stripe",
                value={"gateway": "stripe", "amount_minor": 1999, "currency": "USD", "payment_method": "pm_card_visa"},
                request_only=True,
            ),
            OpenApiExample(
                "Braintree",
                value={
                    "gateway": "braintree",
                    "amount_minor": 1999,
                    "currency": "USD",
                    "payment_method_nonce": "fake-valid-nonce",
                    "customer": 42,
                },
                request_only=True,
            ),
        ],
        tags=["payments"],
    )
    @idempotent
    def post(self, request: Request) -> Response:
        values = _valid(PaymentCreateSerializer, request.data)
        payment = checkout_payment_create(
            merchant=request.user,
            gateway=values["gateway"],
            amount_minor=values["amount_minor"],
            currency=values["currency"],
            payment_method=values.get("payment_method") or values.get("payment_method_nonce") or "",
            customer_id=values.get("customer"),
            description=values.get("description", ""),
            capture=values.get("capture", True),
            request=request._request,
        )
        return Response(PaymentSerializer(payment).data, status=status.HTTP_201_CREATED)


class PaymentDetailAPI(MerchantAPIView):
    @extend_schema(
        operation_id="payments_retrieve",
        summary="Get one of your payments",
        responses={200: PaymentSerializer, **_errors(404, *_COMMON_ERRORS)},
        tags=["payments"],
    )
    def get(self, request: Request, payment_id: str) -> Response:
        payment = merchant_payment_get(merchant=request.user, public_id=payment_id)
        return Response(PaymentSerializer(payment).data)


class RefundCreateAPI(MerchantAPIView):
    @extend_schema(
        operation_id="payments_refunds_create",
        summary="Refund a payment, fully or in part",
        description=(
            "Refunds `amount_minor` (default: everything still refundable) of a succeeded payment. Answers 201 "
            "with the refund: `succeeded`, `pending` (the gateway confirms later) or `failed` (refused by the "
            "gateway). 409 when the payment is not succeeded or nothing is left to refund; 422 when the amount "
            "exceeds captured minus pending and succeeded refunds."
        ),
        request=RefundCreateSerializer,
        parameters=[IDEMPOTENCY_KEY],
        responses={201: RefundSerializer, **_errors(404, *_POST_ERRORS)},
        tags=["payments"],
    )
    @idempotent
    def post(self, request: Request, payment_id: str) -> Response:
        values = _valid(RefundCreateSerializer, request.data)
        refund = checkout_refund_create(
            merchant=request.user,
            payment_public_id=payment_id,
            amount_minor=values.get("amount_minor"),
            reason=values.get("reason", ""),
            request=request._request,
        )
        return Response(RefundSerializer(refund).data, status=status.HTTP_201_CREATED)


class CustomerCreateAPI(MerchantAPIView):
    @extend_schema(
        operation_id="customers_create",
        summary="Create a customer you may charge",
        description="The customer is linked to you: payments you create may name it in `customer`.",
        request=CustomerCreateSerializer,
        parameters=[IDEMPOTENCY_KEY],
        responses={201: CustomerSerializer, **_errors(*_POST_ERRORS)},
        tags=["customers"],
    )
    @idempotent
    def post(self, request: Request) -> Response:
        values = _valid(CustomerCreateSerializer, request.data)
        customer = merchant_customer_create(merchant=request.user, request=request._request, **values)
        return Response(CustomerSerializer(customer).data, status=status.HTTP_201_CREATED)


# --------------------------------------------------------------------------------- docs pages

_STYLE_BLOCK = re.compile(rb"<style[^>]*>(.*?)</style>", re.DOTALL)


def _style_hashes(html: bytes) -> list[str]:
    return [
        "'sha256-" + base64.b64encode(hashlib.sha256(block).digest()).decode() + "'"
        for block in _STYLE_BLOCK.findall(html)
    ]


class SwaggerUIView(SpectacularSwaggerSplitView):
    """Swagger UI from local files (drf-spectacular-sidecar) under the site's CSP.

    The split view serves its start-up script as a separate file (script-src 'self' allows it, no
    inline script); the template's one inline ``<style>`` block is allowed by its SHA-256 hash for
    this response only, never by 'unsafe-inline'.
    """

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        response = super().finalize_response(request, response, *args, **kwargs)
        if request.GET.get("script") is None and isinstance(response, Response) and response.status_code == 200:
            response.render()
            hashes = _style_hashes(response.content)
            if hashes:
                response._csp_update = {"style-src": hashes}
        return response


_REDOC_PAGE = engines["django"].from_string(
    """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
</head>
<body>
<div id="redoc-container"></div>
<script src="{{ redoc_standalone }}" nonce="{{ nonce }}"></script>
<script nonce="{{ nonce }}">
Redoc.init(
  "{{ schema_url|escapejs }}",
  {nonce: "{{ nonce|escapejs }}", nativeScrollbars: true},
  document.getElementById("redoc-container")
);
</script>
</body>
</html>
"""
)


class RedocView(APIView):
    """Redoc from local files under the site's CSP, without the CDN fonts of drf-spectacular's template.

    Redoc injects its styles at run time (styled-components); its ``nonce`` option puts the
    request's CSP nonce on them, and this response adds that nonce to style-src. The start-up
    script carries the same nonce, which script-src already allows. Its search index is built in
    a Web Worker made from a ``blob:`` URL, allowed by worker-src on this page. Two things stay
    blocked, harmlessly: the CSS of its custom scrollbars (injected without the nonce; native
    scrollbars are used instead) and the "Redocly" logo from their CDN (hidden when it fails).
    """

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []

    @extend_schema(exclude=True)
    def get(self, request: Request) -> HttpResponse:
        django_request: HttpRequest = request._request
        html = _REDOC_PAGE.render(
            {
                "title": settings.SPECTACULAR_SETTINGS.get("TITLE", "API"),
                "redoc_standalone": static("drf_spectacular_sidecar/redoc/bundles/redoc.standalone.js"),
                "schema_url": reverse("api_schema"),
                "nonce": str(django_request.csp_nonce),  # type: ignore[attr-defined]
            }
        )
        response = HttpResponse(html, content_type="text/html; charset=utf-8")
        # Search runs in a Web Worker that Redoc creates from a blob: URL.
        response._csp_update = {"style-src": [NONCE], "worker-src": ["'self'", "blob:"]}  # type: ignore[attr-defined]
        return response
