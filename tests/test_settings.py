"""Settings per environment: production passes the deploy check and refuses unsafe values."""

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.test import override_settings

from fintech.core.crypto import generate_key_entry
from tests.utils import database_url

BASE_DIR = Path(__file__).resolve().parent.parent


def _environment(**overrides: str | None) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(
            ("DJANGO_", "DATABASE_", "REDIS_", "SECURE_", "FIELD_ENCRYPTION_", "BLIND_INDEX_", "AUDIT_ANCHOR_")
        )
    }
    env.update(
        DJANGO_ENV="production",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(64),
        DJANGO_ALLOWED_HOSTS="ops.example.com",
        DATABASE_URL=database_url(),
        REDIS_URL=settings.REDIS_URL,
        FIELD_ENCRYPTION_KEYS=generate_key_entry("prod1"),
        BLIND_INDEX_KEY=secrets.token_urlsafe(48),
        AUDIT_ANCHOR_KEYS=generate_key_entry("anchor1"),
    )
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def _manage(*arguments: str, **overrides: str | None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *arguments],
        cwd=BASE_DIR,
        env=_environment(**overrides),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_production_settings_pass_the_deploy_check_with_no_warnings():
    result = _manage("check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_production_security_settings():
    code = (
        "import json; from django.conf import settings as s; print(json.dumps({k: getattr(s, k, None) for k in ["
        "'DEBUG','SECURE_SSL_REDIRECT','SECURE_HSTS_SECONDS','SECURE_HSTS_INCLUDE_SUBDOMAINS','SESSION_COOKIE_SECURE',"
        "'CSRF_COOKIE_SECURE','X_FRAME_OPTIONS','SECURE_REFERRER_POLICY','SECURE_REDIRECT_EXEMPT']}))"
    )
    result = _manage("shell", "-c", code)
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout.strip().splitlines()[-1])
    assert values["DEBUG"] is False
    assert values["SECURE_SSL_REDIRECT"] is True
    assert values["SECURE_HSTS_SECONDS"] >= 31536000
    assert values["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True
    assert values["SESSION_COOKIE_SECURE"] is True
    assert values["CSRF_COOKIE_SECURE"] is True
    assert values["X_FRAME_OPTIONS"] == "DENY"
    assert values["SECURE_REFERRER_POLICY"] == "same-origin"
    assert values["SECURE_REDIRECT_EXEMPT"] == [r"^webhooks/", r"^api/", r"^healthz$"]


@pytest.mark.parametrize(
    "secret_key",
    ["too-short", "django-insecure-" + "x" * 60, "a" * 64],
    ids=["short", "django-insecure", "repetitive"],
)
def test_production_refuses_a_weak_secret_key(secret_key):
    result = _manage("check", DJANGO_SECRET_KEY=secret_key)
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be a random string of at least 50 characters" in result.stderr


@pytest.mark.parametrize("variable", ["DATABASE_URL", "REDIS_URL"])
def test_production_never_falls_back_to_embedded_services(variable):
    result = _manage("check", **{variable: None})
    assert result.returncode != 0
    assert f"{variable} is required in production" in result.stderr


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"FIELD_ENCRYPTION_KEYS": None}, "FIELD_ENCRYPTION_KEYS is empty"),
        ({"FIELD_ENCRYPTION_KEYS": "k1:c2hvcnQ="}, "must be 32 bytes"),
        ({"BLIND_INDEX_KEY": None}, "BLIND_INDEX_KEY must be a random string of at least 32 characters"),
        ({"BLIND_INDEX_KEY": "short"}, "BLIND_INDEX_KEY must be a random string of at least 32 characters"),
        ({"AUDIT_ANCHOR_KEYS": None}, "AUDIT_ANCHOR_KEYS is empty"),
        ({"AUDIT_ANCHOR_KEYS": "a1:c2hvcnQ="}, "AUDIT_ANCHOR_KEYS key 'a1' must be 32 bytes"),
    ],
    ids=["no-keyring", "bad-keyring", "no-index-key", "short-index-key", "no-anchor-key", "bad-anchor-key"],
)
def test_production_refuses_missing_or_weak_encryption_keys(overrides, message):
    result = _manage("check", **overrides)
    assert result.returncode != 0
    assert message in result.stderr


def test_production_refuses_debug():
    result = _manage("check", DJANGO_DEBUG="true")
    assert result.returncode != 0
    assert "DJANGO_DEBUG must be false in production" in result.stderr


def test_only_postgresql_is_accepted():
    result = _manage("check", DJANGO_ENV="development", DATABASE_URL="sqlite:////tmp/fintech.sqlite3")
    assert result.returncode != 0
    assert "DATABASE_URL must point to PostgreSQL" in result.stderr


def test_unknown_environment_is_refused():
    result = _manage("check", DJANGO_ENV="staging")
    assert result.returncode != 0
    assert "DJANGO_ENV='staging' is not one of: development, production, test" in result.stderr


@pytest.mark.django_db
@override_settings(SECURE_SSL_REDIRECT=True)
def test_ssl_redirect_exempts_webhooks_api_and_health(client):
    assert client.get("/").status_code == 301
    assert client.get("/").headers["Location"].startswith("https://")
    # Exempt paths are answered over plain HTTP by the app itself, not redirected.
    assert client.post("/webhooks/stripe/").status_code == 400  # answered: no signature
    assert client.get("/api/payments/").status_code != 301
    assert client.get("/healthz").status_code == 503  # answered: no worker heartbeat in this test
    assert client.get("/audit/").status_code == 301
