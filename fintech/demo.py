"""Demo data for the run command: staff logins (more demo data arrives with each domain app).

Passwords are random, made on the first run and kept in ``var/demo-logins.json`` (mode 600)
so every later run prints the same ones. Never used in production.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction

from fintech.embedded import write_private_file


@dataclass(frozen=True)
class DemoLogin:
    username: str
    # None for an account that existed before demo data was created: it is never modified.
    password: str | None
    role: str


DEMO_STAFF = (
    # username, role description, group (role), superuser
    ("admin", "administrator", "admin", True),
    ("ops", "operations", "ops", False),
    ("compliance", "compliance officer", "compliance", False),
)


def _credentials_path() -> Path:
    return Path(settings.VAR_DIR) / "demo-logins.json"


def _load_passwords(path: Path) -> dict[str, str]:
    try:
        return {entry["username"]: entry["password"] for entry in json.loads(path.read_text())}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


@transaction.atomic
def demo_seed() -> list[DemoLogin]:
    """Create the demo staff users that are missing; return every demo login.

    An existing account with a demo username is left exactly as it is (no password reset, no
    new rights): demo data must never take over a real account.
    """
    if settings.DJANGO_ENV == "production":
        raise ImproperlyConfigured("Demo data is never created in production.")
    user_model = get_user_model()
    path = _credentials_path()
    passwords = _load_passwords(path)
    logins = []
    for username, role, group, superuser in DEMO_STAFF:
        password = passwords.get(username)
        if not user_model.objects.filter(username=username).exists():
            password = secrets.token_urlsafe(12)
            user = user_model(username=username, email=f"{username}@demo.fintech.invalid", first_name=role.title())
            user.is_staff = True
            user.is_superuser = superuser
            user.set_password(password)
            user.save()
            user.groups.add(Group.objects.get(name=group))
        logins.append(DemoLogin(username=username, password=password, role=role))
    write_private_file(path, json.dumps([asdict(login) for login in logins], indent=2))
    return logins
