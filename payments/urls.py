"""Staff dashboard pages of the payments app (mounted at /payments/)."""

app_name = "payments"
urlpatterns: list = []
