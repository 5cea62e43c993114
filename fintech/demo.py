"""Demo data for the run command: staff logins of each role with TOTP devices, and customers.

One demo customer is a listed entity, so the sanctions hit queue has something to review once the
scheduled refresh has loaded the lists (development settings load them from ../shared/data).

Passwords and TOTP secrets are random, made on the first run and kept in
``var/demo-logins.json`` (mode 600) so every later run prints the same ones; ``manage.py
demo_code USER`` prints a demo user's current TOTP code. Never used in production, and an
existing account that happens to have a demo username is never modified.
"""

from __future__ import annotations

import datetime
import json
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import TOTP, format_hotp_value, generate_totp_secret, hotp_value
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils import timezone

from fintech.core.audit import SystemActor
from fintech.core.customers import customer_create, customer_set_kyc_status, customer_set_risk_rating
from fintech.core.models import Customer
from fintech.embedded import write_private_file


@dataclass(frozen=True)
class DemoLogin:
    username: str
    # None for an account that existed before demo data was created: it is never modified.
    password: str | None
    role: str
    totp_secret: str | None = None


DEMO_STAFF = (
    # username, role description, group (role), superuser
    ("admin", "administrator", "admin", True),
    ("ops", "operations", "ops", False),
    ("compliance", "compliance officer", "compliance", False),
)
DEMO_EMAIL_DOMAIN = "demo.fintech.invalid"
DEMO_CUSTOMERS = (
    # legal name, kind, nationality/residence, date of birth, tax id, city, KYC, risk
    ("Amelia Hart", "person", "GB", datetime.date(1986, 4, 12), "QQ123456C", "Manchester", "verified", "low"),
    ("Jonas Weber", "person", "DE", datetime.date(1979, 9, 30), "12 345 678 901", "Berlin", "verified", "low"),
    ("Sofia Marin", "person", "ES", datetime.date(1992, 1, 5), "12345678Z", "Valencia", "pending", "unassessed"),
    ("Daniel Okafor", "person", "NG", datetime.date(1990, 7, 21), "22145678901", "Lagos", "pending", "medium"),
    ("Grace Chen", "person", "US", datetime.date(1975, 11, 2), "123-45-6789", "Seattle", "verified", "low"),
    ("Lucas Moreau", "person", "FR", datetime.date(1968, 3, 17), "1 68 03 75 123 456", "Lyon", "rejected", "high"),
    ("Northwind Trading Ltd", "business", "GB", None, "GB123456789", "London", "verified", "medium"),
    ("Blue Harbor Logistics LLC", "business", "US", None, "12-3456789", "Miami", "pending", "medium"),
    ("Kestrel Software GmbH", "business", "DE", None, "DE811234567", "Munich", "verified", "low"),
    ("Atlas Commodities FZE", "business", "AE", None, "100234567800003", "Dubai", "pending", "high"),
    # Listed by OFAC (SDN entry 306): once the lists load, screening raises a hit to review.
    ("Banco Nacional de Cuba", "business", "CU", None, "CU-0000306", "Havana", "pending", "high"),
)
KYC_PATHS = {"verified": ["pending", "verified"], "pending": ["pending"], "rejected": ["pending", "rejected"]}


def _credentials_path() -> Path:
    return Path(settings.VAR_DIR) / "demo-logins.json"


def _load_logins(path: Path) -> dict[str, dict]:
    try:
        return {entry["username"]: entry for entry in json.loads(path.read_text())}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _demo_staff(stored: dict[str, dict]) -> list[DemoLogin]:
    user_model = get_user_model()
    logins = []
    for username, role, group, superuser in DEMO_STAFF:
        entry = stored.get(username, {})
        password, totp_secret = entry.get("password"), entry.get("totp_secret")
        user = user_model.objects.filter(username=username).first()
        if user is None:
            password = secrets.token_urlsafe(12)
            user = user_model(username=username, email=f"{username}@{DEMO_EMAIL_DOMAIN}", first_name=role.title())
            user.is_staff = True
            user.is_superuser = superuser
            user.set_password(password)
            user.save()
            user.groups.add(Group.objects.get(name=group))
        elif password is None:  # not ours: leave it exactly as it is
            logins.append(DemoLogin(username=username, password=None, role=role))
            continue
        if not Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists():
            totp_secret = generate_totp_secret()
            TOTP.activate(user, totp_secret)
        logins.append(DemoLogin(username=username, password=password, role=role, totp_secret=totp_secret))
    return logins


def _demo_customers() -> int:
    if Customer.objects.filter(email__endswith=f"@{DEMO_EMAIL_DOMAIN}").exists():
        return 0
    actor = SystemActor("demo")
    for name, kind, country, born, tax_id, city, kyc, risk in DEMO_CUSTOMERS:
        slug = name.lower().split()[0]
        customer = customer_create(
            actor=actor,
            kind=kind,
            legal_name=name,
            date_of_birth=born,
            nationality=country if kind == "person" else "",
            country_of_residence=country,
            address={"lines": [f"{len(name) * 7} Demo Street"], "city": city, "country": country},
            tax_id=tax_id,
            email=f"{slug}@{DEMO_EMAIL_DOMAIN}",
        )
        for status in KYC_PATHS[kyc]:
            customer_set_kyc_status(customer=customer, status=status, actor=actor, reason="demo data")
        if risk != "unassessed":
            customer_set_risk_rating(customer=customer, rating=risk, actor=actor, reason="demo data")
    return len(DEMO_CUSTOMERS)


@transaction.atomic
def demo_seed() -> list[DemoLogin]:
    """Create the demo logins and customers that are missing; return every demo login."""
    if settings.DJANGO_ENV == "production":
        raise ImproperlyConfigured("Demo data is never created in production.")
    path = _credentials_path()
    logins = _demo_staff(_load_logins(path))
    _demo_customers()
    write_private_file(path, json.dumps([asdict(login) for login in logins], indent=2))
    return logins


def demo_totp_code(username: str) -> str:
    """The current TOTP code of a demo login (for the demo only; real staff use an authenticator app)."""
    if settings.DJANGO_ENV == "production":
        raise ImproperlyConfigured("Demo codes are never available in production.")
    secret = _load_logins(_credentials_path()).get(username, {}).get("totp_secret")
    if not secret:
        raise KeyError(f"{username!r} is not a demo login with a TOTP secret")
    return format_hotp_value(hotp_value(secret, int(timezone.now().timestamp()) // 30))
