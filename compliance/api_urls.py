"""The screening REST API (mounted at /api/screening/)."""

from django.urls import path

from . import apis

urlpatterns = [
    path("search", apis.ScreeningSearchAPI.as_view(), name="api_screening_search"),
]
