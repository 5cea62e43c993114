"""The merchant REST API (mounted at /api/): payments, refunds, customers, the OpenAPI schema and its docs."""

from django.urls import path
from drf_spectacular.views import SpectacularAPIView

from . import apis

urlpatterns = [
    path("payments", apis.PaymentListCreateAPI.as_view(), name="api_payments"),
    path("payments/<str:payment_id>", apis.PaymentDetailAPI.as_view(), name="api_payment"),
    path("payments/<str:payment_id>/refunds", apis.RefundCreateAPI.as_view(), name="api_payment_refunds"),
    path("customers", apis.CustomerCreateAPI.as_view(), name="api_customers"),
    path("schema/", SpectacularAPIView.as_view(), name="api_schema"),
    path("docs/", apis.SwaggerUIView.as_view(url_name="api_schema"), name="api_docs"),
    path("redoc/", apis.RedocView.as_view(), name="api_redoc"),
]
