"""The merchant REST API (mounted at /api/)."""

urlpatterns: list = []
