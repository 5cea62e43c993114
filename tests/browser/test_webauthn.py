"""Security keys as a second factor, through Chromium's virtual authenticator (DevTools protocol).

The live server answers on http://localhost, which browsers treat as a secure context and fido2
accepts as an origin; WebAuthn refuses IP-address origins such as http://127.0.0.1.
"""

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from playwright.sync_api import Page, expect

from fintech.core.models import AuditEvent
from tests.factories import DEFAULT_PASSWORD, StaffUserFactory
from tests.utils import totp_code

VIRTUAL_SECURITY_KEY = {
    "protocol": "ctap2",
    "transport": "usb",
    "hasResidentKey": True,
    "hasUserVerification": True,
    "isUserVerified": True,
    "automaticPresenceSimulation": True,
}


@pytest.fixture
def page_problems(page: Page) -> list[str]:
    """Console errors, uncaught exceptions and Content Security Policy violations on ``page``."""
    problems: list[str] = []

    def on_console(message) -> None:
        # The browser's own favicon probe is not a page problem (the site has no favicon.ico).
        if message.type == "error" and not message.location.get("url", "").endswith("/favicon.ico"):
            problems.append(f"console: {message.text} at {message.location.get('url')}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"exception: {error}"))
    page.expose_function("reportCspViolation", lambda text: problems.append(f"csp: {text}"))
    # Init scripts run through the DevTools protocol, outside the page's CSP.
    page.add_init_script(
        "document.addEventListener('securitypolicyviolation', e => "
        "window.reportCspViolation(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`));"
    )
    return problems


@pytest.fixture
def security_key(page: Page) -> dict:
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    authenticator_id = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": VIRTUAL_SECURITY_KEY})[
        "authenticatorId"
    ]
    return {"cdp": cdp, "id": authenticator_id}


def _password_step(page: Page, base_url: str) -> None:
    page.goto(f"{base_url}/accounts/login/")
    page.get_by_label("Username").fill("olivia")
    page.get_by_label("Password").fill(DEFAULT_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{base_url}/accounts/2fa/authenticate/")


def test_staff_add_a_security_key_and_sign_in_with_it(
    live_server, page: Page, transactional_db, page_problems, security_key
):
    assert live_server.url.startswith("http://localhost:")
    olivia = StaffUserFactory(username="olivia", first_name="Olivia", last_name="Ops", roles=["ops"])
    secret = generate_totp_secret()
    TOTP.activate(olivia, secret)

    # Password and TOTP, as today.
    _password_step(page, live_server.url)
    page.locator("input[name=code]").fill(totp_code(secret))
    page.get_by_role("button", name="Sign In", exact=True).click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()

    # Adding a key asks to confirm access first, then the browser creates the credential.
    page.goto(f"{live_server.url}/accounts/2fa/webauthn/add/")
    expect(page).to_have_url(f"{live_server.url}/accounts/reauthenticate/?next=%2Faccounts%2F2fa%2Fwebauthn%2Fadd%2F")
    page.get_by_label("Password").fill(DEFAULT_PASSWORD)
    page.get_by_role("button", name="Confirm").click()
    expect(page).to_have_url(f"{live_server.url}/accounts/2fa/webauthn/add/")
    page.get_by_label("Name").fill("Desk key")
    page.get_by_role("button", name="Add").click()
    expect(page.get_by_text("Security key added.")).to_be_visible()

    key = Authenticator.objects.get(user=olivia, type=Authenticator.Type.WEBAUTHN)
    assert key.data["name"] == "Desk key"
    credentials = security_key["cdp"].send("WebAuthn.getCredentials", {"authenticatorId": security_key["id"]})
    assert len(credentials["credentials"]) == 1
    assert AuditEvent.objects.filter(action="auth.mfa_added", details__type="webauthn").count() == 1

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{live_server.url}/accounts/login/")

    # Password, then the security key instead of a code.
    _password_step(page, live_server.url)
    page.get_by_role("button", name="Use a security key").click()
    expect(page).to_have_url(f"{live_server.url}/")
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    expect(page.get_by_text("Olivia Ops")).to_be_visible()

    key.refresh_from_db()
    assert key.last_used_at is not None
    assert AuditEvent.objects.filter(action="auth.mfa_passed", details__type="webauthn").count() == 1
    assert page_problems == []
