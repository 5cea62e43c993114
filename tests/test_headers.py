"""Security headers on every page and the password rules."""

import pytest
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("url", ["/accounts/login/", "/", "/customers/", "/audit/", "/admin/"])
def test_every_page_has_a_strict_content_security_policy(client, staff_client, url):
    response = (client if url == "/accounts/login/" else staff_client).get(url)
    if url == "/accounts/login/":
        client.logout()
        response = client.get(url)
        assert response.status_code == 200
    policy = response.headers["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";") if part.strip())
    assert directives["default-src"] == "'self'"
    assert directives["script-src"].startswith("'self'")
    assert directives["frame-ancestors"] == "'none'"
    assert directives["object-src"] == "'none'"
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"


def test_an_inline_script_gets_a_nonce_in_the_policy(rf):
    from csp.middleware import CSPMiddleware
    from django.http import HttpResponse
    from django.template import engines

    template = engines["django"].from_string('<script nonce="{{ request.csp_nonce }}">1</script>')

    def view(request):
        return HttpResponse(template.render({}, request))

    request = rf.get("/")
    response = CSPMiddleware(view)(request)
    nonce = response.content.decode().split('nonce="')[1].split('"')[0]
    assert len(nonce) >= 16
    assert f"'nonce-{nonce}'" in response.headers["Content-Security-Policy"]


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("Sh0rt-pass", "at least 12 characters"),
        ("password1234", "too common"),
        ("123456789012", "entirely numeric"),
    ],
)
def test_weak_passwords_are_refused(password, message):
    with pytest.raises(ValidationError, match=message):
        validate_password(password)


def test_a_long_uncommon_password_is_accepted():
    validate_password("violet-harbor-engine-42")
