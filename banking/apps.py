from django.apps import AppConfig


class BankingConfig(AppConfig):
    """Depends on fintech.core and payments."""

    name = "banking"
    verbose_name = "Banking"
