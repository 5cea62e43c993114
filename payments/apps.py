from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    """Depends on fintech.core only."""

    name = "payments"
    verbose_name = "Payments"
