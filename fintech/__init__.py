"""The fintech operations platform: project package and composition root."""

import os

SETTINGS_BY_ENVIRONMENT = {
    "development": "fintech.settings.development",
    "production": "fintech.settings.production",
    "test": "fintech.settings.test",
}


def configure_settings_module() -> None:
    """Point Django at the settings module named by DJANGO_ENV (default: development)."""
    environment = os.environ.get("DJANGO_ENV", "development")
    if environment not in SETTINGS_BY_ENVIRONMENT:
        choices = ", ".join(SETTINGS_BY_ENVIRONMENT)
        raise SystemExit(f"DJANGO_ENV={environment!r} is not one of: {choices}")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", SETTINGS_BY_ENVIRONMENT[environment])


from .celery import app as celery_app  # noqa: E402  (loaded with Django so @shared_task binds to it)

__all__ = ["celery_app", "configure_settings_module"]
