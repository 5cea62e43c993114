"""Lockout (django-axes) and the client address behind proxies."""

import pytest
from django.test import RequestFactory, override_settings

from fintech.core.models import AuditEvent
from fintech.core.network import client_ip
from tests.factories import DEFAULT_PASSWORD

pytestmark = pytest.mark.django_db


def _attempt(client, password: str, address: str, **headers):
    return client.post("/accounts/login/", {"login": "staff", "password": password}, REMOTE_ADDR=address, **headers)


def test_a_username_is_locked_after_ten_failures_from_any_address(client, staff_user, settings):
    assert settings.AXES_FAILURE_LIMIT == 10
    assert settings.AXES_COOLOFF_TIME.total_seconds() >= 30 * 60  # PCI DSS 8.3.4
    for attempt in range(10):
        response = _attempt(client, "wrong-password-123", f"198.51.100.{attempt + 1}")
    assert response.status_code == 429
    locked = _attempt(client, DEFAULT_PASSWORD, "203.0.113.99")  # right password, new address: still locked
    assert locked.status_code == 429
    assert b"Account locked" in locked.content
    assert "_auth_user_id" not in client.session
    lockouts = AuditEvent.objects.filter(action="auth.locked_out")
    assert lockouts.exists() and lockouts.first().details == {"username": "staff"}


def test_a_forged_forwarded_for_header_neither_unlocks_nor_is_recorded(client, staff_user):
    for _ in range(10):
        _attempt(client, "wrong-password-123", "192.0.2.10", HTTP_X_FORWARDED_FOR="10.9.8.7")
    response = _attempt(client, DEFAULT_PASSWORD, "192.0.2.10", HTTP_X_FORWARDED_FOR="10.0.0.1")
    assert response.status_code == 429
    addresses = set(AuditEvent.objects.filter(action="auth.login_failed").values_list("ip_address", flat=True))
    assert addresses == {"192.0.2.10"}


def test_success_before_the_limit_resets_the_count(client, staff_user):
    for _ in range(9):
        _attempt(client, "wrong-password-123", "192.0.2.20")
    assert _attempt(client, DEFAULT_PASSWORD, "192.0.2.20").status_code == 302
    client.post("/accounts/logout/")
    assert _attempt(client, "wrong-password-123", "192.0.2.20").status_code == 200  # counting from zero


@pytest.mark.parametrize(
    ("proxies", "forwarded_for", "remote", "expected"),
    [
        (0, "203.0.113.5", "192.0.2.1", "192.0.2.1"),  # no trusted proxy: the header is ignored
        (1, "203.0.113.5", "192.0.2.1", "203.0.113.5"),  # one proxy appended the client
        (1, "6.6.6.6, 203.0.113.5", "192.0.2.1", "203.0.113.5"),  # the client's own entry is ignored
        (2, "6.6.6.6, 203.0.113.5, 10.0.0.2", "10.0.0.3", "203.0.113.5"),
        (2, "203.0.113.5", "10.0.0.3", "10.0.0.3"),  # fewer hops than proxies: not from our proxies
        (1, "not-an-address", "192.0.2.1", "192.0.2.1"),
        (1, "2001:db8:0:0:0:0:0:1", "192.0.2.1", "2001:db8::1"),
    ],
)
def test_client_address_behind_trusted_proxies(proxies, forwarded_for, remote, expected):
    request = RequestFactory().get("/", REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR=forwarded_for)
    with override_settings(TRUSTED_PROXY_COUNT=proxies):
        assert client_ip(request) == expected


def test_a_different_case_of_the_username_counts_against_the_same_lock(client, staff_user):
    for attempt in range(10):
        _attempt(client, "wrong-password-123", f"198.51.100.{attempt + 1}")
    response = client.post(
        "/accounts/login/", {"login": "STAFF", "password": DEFAULT_PASSWORD}, REMOTE_ADDR="203.0.113.50"
    )
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session
