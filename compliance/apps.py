from django.apps import AppConfig


class ComplianceConfig(AppConfig):
    """Depends on fintech.core, payments and banking; nothing depends on it."""

    name = "compliance"
    verbose_name = "Compliance"
