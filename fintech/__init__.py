"""The fintech operations platform: project package and composition root."""

import os
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
SETTINGS_BY_ENVIRONMENT = {
    "development": "fintech.settings.development",
    "production": "fintech.settings.production",
    "test": "fintech.settings.test",
}


def load_dotenv() -> None:
    """Read the project's ``.env`` file, if any, into the environment; variables already set win.

    Settings, the run command and the embedded servers all see the same values. An empty value
    (``NAME=``) counts as unset everywhere.
    """
    path = PROJECT_DIR / ".env"
    if path.is_file():
        import environ

        environ.Env.read_env(path)


def configure_settings_module() -> None:
    """Point Django at the settings module named by DJANGO_ENV (default: development)."""
    load_dotenv()
    environment = os.environ.get("DJANGO_ENV") or "development"
    if environment not in SETTINGS_BY_ENVIRONMENT:
        choices = ", ".join(SETTINGS_BY_ENVIRONMENT)
        raise SystemExit(f"DJANGO_ENV={environment!r} is not one of: {choices}")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", SETTINGS_BY_ENVIRONMENT[environment])


from .celery import app as celery_app  # noqa: E402  (loaded with Django so @shared_task binds to it)

__all__ = ["PROJECT_DIR", "celery_app", "configure_settings_module", "load_dotenv"]
