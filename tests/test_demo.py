"""Demo data: staff logins created once, printed, never in production."""

import json

import pytest
from allauth.mfa.models import Authenticator
from django.contrib.auth import authenticate
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.test import override_settings

from fintech.core.models import AuditEvent, Customer
from fintech.demo import DEMO_CUSTOMERS, demo_seed, demo_totp_code
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def var_dir(tmp_path, settings):
    settings.VAR_DIR = tmp_path
    return tmp_path


def test_seed_creates_staff_logins_that_work(var_dir, rf):
    logins = demo_seed()
    assert [login.username for login in logins] == ["admin", "ops", "compliance"]
    for login in logins:
        user = authenticate(rf.post("/accounts/login/"), username=login.username, password=login.password)
        assert user is not None and user.is_staff
        assert user.is_superuser == (login.username == "admin")
    stored = json.loads((var_dir / "demo-logins.json").read_text())
    assert {entry["username"]: entry["password"] for entry in stored} == {
        login.username: login.password for login in logins
    }
    assert (var_dir / "demo-logins.json").stat().st_mode & 0o777 == 0o600


def test_seed_is_idempotent(capsys):
    first = demo_seed()
    call_command("seed_demo")
    assert demo_seed() == first
    output = capsys.readouterr().out
    for login in first:
        assert f"{login.username:<12} {login.password:<20} {login.totp_secret:<34}" in output


@override_settings(DJANGO_ENV="production")
def test_seed_is_refused_in_production():
    with pytest.raises(ImproperlyConfigured, match="never created in production"):
        demo_seed()


def test_an_existing_account_with_a_demo_name_is_never_modified(capsys):
    existing = UserFactory(username="admin", is_staff=False, is_superuser=False)
    password_hash = existing.password
    logins = {login.username: login for login in demo_seed()}
    existing.refresh_from_db()
    assert (existing.password, existing.is_staff, existing.is_superuser) == (password_hash, False, False)
    assert logins["admin"].password is None
    assert logins["ops"].password is not None
    call_command("seed_demo")
    assert "admin        (existing account, left unchanged)" in capsys.readouterr().out
    assert not Authenticator.objects.filter(user=existing).exists()


def test_demo_staff_have_totp_devices_whose_secrets_are_printed(capsys):
    logins = demo_seed()
    for login in logins:
        authenticator = Authenticator.objects.get(user__username=login.username, type=Authenticator.Type.TOTP)
        assert login.totp_secret and login.totp_secret not in str(authenticator.data)  # stored encrypted
    call_command("demo_code", "ops")
    code = capsys.readouterr().out.strip()
    assert code == demo_totp_code("ops") and len(code) == 6 and code.isdigit()
    with pytest.raises(CommandError, match="not a demo login"):
        call_command("demo_code", "nobody")


def test_demo_customers_have_encrypted_fields_and_an_audited_history():
    demo_seed()
    demo_seed()
    customers = Customer.objects.filter(email__endswith="@demo.fintech.invalid")
    assert customers.count() == len(DEMO_CUSTOMERS)
    grace = customers.get(legal_name="Grace Chen")
    assert (grace.tax_id, grace.kyc_status, grace.risk_rating) == ("123-45-6789", "verified", "low")
    assert grace.address["city"] == "Seattle"
    assert AuditEvent.objects.filter(action="customer.created", actor_label="demo").count() == len(DEMO_CUSTOMERS)
