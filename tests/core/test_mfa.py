"""Staff MFA: mandatory for dashboard and admin, TOTP secrets encrypted, codes single-use,
a new session key after every step."""

import json

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from fido2.webauthn import AuthenticatorData

from fintech.core.accounts import MFA_CIPHERTEXT_PREFIX
from fintech.core.models import AuditEvent
from tests.factories import DEFAULT_PASSWORD, StaffUserFactory, UserFactory
from tests.utils import totp_code

pytestmark = pytest.mark.django_db


@pytest.fixture
def officer():
    return StaffUserFactory(username="carla", roles=["compliance"])


@pytest.fixture
def officer_secret(officer):
    secret = generate_totp_secret()
    TOTP.activate(officer, secret)
    return secret


def _password_step(client, username="carla"):
    return client.post("/accounts/login/", {"login": username, "password": DEFAULT_PASSWORD})


@pytest.mark.parametrize("url", ["/", "/customers/", "/audit/", "/admin/", "/admin/auth/user/"])
def test_a_staff_session_without_a_second_factor_reaches_only_mfa_set_up(client, officer, url):
    _password_step(client)
    response = client.get(url)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/accounts/2fa/totp/activate/?next=")


# allauth announces a new factor on commit: a real transaction, as in production, runs that inside the view.
@pytest.mark.django_db(transaction=True)
def test_setting_up_totp_stores_the_secret_encrypted_and_opens_the_dashboard(client, officer):
    _password_step(client)
    key_after_password = client.session.session_key
    page = client.get("/accounts/2fa/totp/activate/")
    assert page.status_code == 200
    secret = page.context["form"].secret
    response = client.post("/accounts/2fa/totp/activate/", {"code": totp_code(secret)})
    assert response.status_code == 302
    assert client.session.session_key != key_after_password  # new key after the second step
    assert client.get("/").status_code == 200

    stored = Authenticator.objects.get(user=officer, type=Authenticator.Type.TOTP).data["secret"]
    assert stored.startswith(MFA_CIPHERTEXT_PREFIX) and secret not in stored
    assert AuditEvent.objects.filter(action="auth.mfa_added", actor_label="carla").exists()
    # recovery codes were generated too, their seed encrypted as well
    seed = Authenticator.objects.get(user=officer, type=Authenticator.Type.RECOVERY_CODES).data["seed"]
    assert seed.startswith(MFA_CIPHERTEXT_PREFIX)


def test_sign_in_with_totp_gives_a_new_session_key_at_each_step(client, officer, officer_secret):
    anonymous_key = client.session.session_key
    response = _password_step(client)
    assert response.headers["Location"] == "/accounts/2fa/authenticate/"
    assert "_auth_user_id" not in client.session  # not signed in before the second factor
    key_after_password = client.session.session_key
    assert client.get("/").status_code == 302
    response = client.post("/accounts/2fa/authenticate/", {"code": totp_code(officer_secret)})
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(officer.pk)
    assert client.session.session_key not in (anonymous_key, key_after_password)
    assert client.get("/").status_code == 200
    assert AuditEvent.objects.filter(action="auth.mfa_passed", actor_label="carla").exists()


def test_a_totp_code_works_once(client, officer, officer_secret):
    code = totp_code(officer_secret)
    _password_step(client)
    assert client.post("/accounts/2fa/authenticate/", {"code": code}).status_code == 302
    client.post("/accounts/logout/")
    _password_step(client)
    replay = client.post("/accounts/2fa/authenticate/", {"code": code})
    assert replay.status_code == 200  # the form again, with an error
    assert b"Incorrect code" in replay.content
    assert "_auth_user_id" not in client.session


def test_a_wrong_code_is_refused(client, officer, officer_secret):
    _password_step(client)
    response = client.post("/accounts/2fa/authenticate/", {"code": "000000"})
    assert response.status_code == 200 and b"Incorrect code" in response.content
    assert "_auth_user_id" not in client.session


def test_a_recovery_code_is_a_second_factor_once(client, officer, officer_secret):
    codes = RecoveryCodes.activate(officer).get_unused_codes()
    _password_step(client)
    assert client.post("/accounts/2fa/authenticate/", {"code": codes[0]}).status_code == 302
    assert client.get("/").status_code == 200
    client.post("/accounts/logout/")
    _password_step(client)
    assert client.post("/accounts/2fa/authenticate/", {"code": codes[0]}).status_code == 200
    assert "_auth_user_id" not in client.session


def test_staff_cannot_remove_their_only_second_factor(client, officer, officer_secret):
    _password_step(client)
    client.post("/accounts/2fa/authenticate/", {"code": totp_code(officer_secret)})
    client.post("/accounts/2fa/totp/deactivate/")
    assert Authenticator.objects.filter(user=officer, type=Authenticator.Type.TOTP).exists()


def test_the_admin_signs_in_through_the_same_page(client):
    response = client.get("/admin/login/?next=/admin/")
    assert response.status_code == 302
    assert response.headers["Location"] == "/accounts/login/?next=/admin/"


def test_customers_are_not_asked_for_staff_mfa(client):
    customer = UserFactory(username="customer")
    client.post("/accounts/login/", {"login": "customer", "password": DEFAULT_PASSWORD})
    assert client.session["_auth_user_id"] == str(customer.pk)
    assert client.get("/").status_code == 403  # not staff: refused, not sent to MFA set-up


@pytest.mark.parametrize(
    "stored",
    ["JBSWY3DPEHPK3PXP", "fintech:v1:not-base64!", "fintech:v1:" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQQ=="],
    ids=["in-clear", "not-base64", "not-ours"],
)
def test_a_secret_that_cannot_be_read_refuses_the_step_with_403(client, officer, stored, caplog):
    Authenticator.objects.filter(user=officer).delete()
    Authenticator.objects.create(user=officer, type=Authenticator.Type.TOTP, data={"secret": stored})
    _password_step(client)
    response = client.post("/accounts/2fa/authenticate/", {"code": "123456"})
    assert response.status_code == 403
    assert "_auth_user_id" not in client.session
    assert "second factor unusable" in caplog.text and stored not in caplog.text


def test_second_factor_guesses_are_capped_and_audited(client, officer, officer_secret):
    _password_step(client)
    for _ in range(11):
        assert client.post("/accounts/2fa/authenticate/", {"code": "000000"}).status_code == 200
    refused = client.post("/accounts/2fa/authenticate/", {"code": totp_code(officer_secret)})
    assert refused.status_code == 200 and b"Too many failed" in refused.content
    assert "_auth_user_id" not in client.session
    assert AuditEvent.objects.filter(action="auth.mfa_failed", target_id=str(officer.pk)).count() == 11


def test_changing_factors_asks_to_reauthenticate_even_right_after_sign_in(client, officer, officer_secret):
    from tests.utils import login_with_mfa

    login_with_mfa(client, officer)  # password and TOTP both just now
    response = client.get("/accounts/2fa/recovery-codes/generate/")
    assert response.status_code == 302 and "/reauthenticate/" in response.headers["Location"]


# --------------------------------------------------------------------------- WebAuthn security keys
class SoftwareSecurityKey:
    """A security key in software (P-256, "none" attestation): answers allauth's WebAuthn
    ceremonies the way a browser would, for the origin it is asked to claim."""

    def __init__(self, rp_id: str = "localhost") -> None:
        import secrets

        from cryptography.hazmat.primitives.asymmetric import ec

        self.rp_id = rp_id
        self.private_key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = secrets.token_bytes(32)
        self.counter = 0

    def _authenticator_data(self, credential_data: bytes = b"") -> AuthenticatorData:
        from fido2.utils import sha256

        flags = AuthenticatorData.FLAG.UP | AuthenticatorData.FLAG.UV
        if credential_data:
            flags |= AuthenticatorData.FLAG.AT
        self.counter += 1
        return AuthenticatorData.create(sha256(self.rp_id.encode()), flags, self.counter, credential_data)

    def registration(self, challenge: str, origin: str = "http://localhost") -> dict:
        from fido2.cose import ES256
        from fido2.utils import websafe_encode
        from fido2.webauthn import Aaguid, AttestationObject, AttestedCredentialData, CollectedClientData

        public_key = ES256.from_cryptography_key(self.private_key.public_key())
        credential_data = AttestedCredentialData.create(Aaguid.NONE, self.credential_id, public_key)
        attestation = AttestationObject.create("none", self._authenticator_data(credential_data), {})
        client_data = CollectedClientData.create("webauthn.create", challenge, origin)
        return {
            "id": websafe_encode(self.credential_id),
            "rawId": websafe_encode(self.credential_id),
            "type": "public-key",
            "response": {"clientDataJSON": client_data.b64, "attestationObject": websafe_encode(attestation)},
            "clientExtensionResults": {"credProps": {"rk": False}},
        }

    def assertion(self, challenge: str, origin: str = "http://localhost") -> dict:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from fido2.utils import websafe_encode
        from fido2.webauthn import CollectedClientData

        authenticator_data = self._authenticator_data()
        client_data = CollectedClientData.create("webauthn.get", challenge, origin)
        signature = self.private_key.sign(authenticator_data + client_data.hash, ec.ECDSA(hashes.SHA256()))
        return {
            "id": websafe_encode(self.credential_id),
            "rawId": websafe_encode(self.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": client_data.b64,
                "authenticatorData": websafe_encode(authenticator_data),
                "signature": websafe_encode(signature),
            },
            "clientExtensionResults": {},
        }


def _challenge(options) -> str:
    from fido2.utils import websafe_encode

    challenge = options["publicKey"]["challenge"]
    return challenge if isinstance(challenge, str) else websafe_encode(challenge)


def _add_security_key(user, key: SoftwareSecurityKey, name: str = "Desk key") -> Authenticator:
    """A WebAuthn row as allauth stores it after a registration (checked by the tests that register)."""
    from allauth.mfa.webauthn.internal.auth import WebAuthn

    return WebAuthn.add(user, name, key.registration("dW51c2Vk")).instance


@pytest.fixture
def localhost_client(client):
    # WebAuthn needs a secure context: https, or http://localhost as browsers and fido2 allow.
    client.defaults["HTTP_HOST"] = "localhost"
    return client


@pytest.fixture
def security_key():
    return SoftwareSecurityKey()


@pytest.mark.django_db(transaction=True)
def test_staff_without_a_factor_can_set_up_a_security_key_first(localhost_client, officer, security_key):
    client = localhost_client
    _password_step(client)
    page = client.get("/accounts/2fa/webauthn/add/")
    assert page.status_code == 200  # no reauthentication: the password was just entered
    options = page.context["js_data"]["creation_options"]
    assert options["publicKey"]["rp"] == {"id": "localhost", "name": "Fintech Ops"}
    key_after_password = client.session.session_key

    response = client.post(
        "/accounts/2fa/webauthn/add/",
        {"name": "Desk key", "credential": json.dumps(security_key.registration(_challenge(options)))},
    )
    assert response.status_code == 302
    assert client.session.session_key != key_after_password
    assert client.get("/").status_code == 200  # the new key counts as the second factor passed

    key = Authenticator.objects.get(user=officer, type=Authenticator.Type.WEBAUTHN)
    assert key.wrap().name == "Desk key"
    # Public key only, stored as allauth keeps it (the keyring is not applied to it).
    stored = key.wrap().authenticator_data.credential_data
    assert stored.credential_id == security_key.credential_id
    assert AuditEvent.objects.filter(action="auth.mfa_added", details__type="webauthn").exists()
    assert Authenticator.objects.filter(user=officer, type=Authenticator.Type.RECOVERY_CODES).exists()


def test_a_registration_for_another_origin_is_refused(localhost_client, officer, security_key):
    client = localhost_client
    _password_step(client)
    options = client.get("/accounts/2fa/webauthn/add/").context["js_data"]["creation_options"]
    forged = security_key.registration(_challenge(options), origin="https://phish.example")
    response = client.post("/accounts/2fa/webauthn/add/", {"name": "x", "credential": json.dumps(forged)})
    assert response.status_code == 200 and b"Incorrect code" in response.content
    assert not Authenticator.objects.filter(user=officer).exists()


def test_staff_with_only_a_security_key_sign_in_with_password_and_key(localhost_client, officer, security_key):
    client = localhost_client
    key = _add_security_key(officer, security_key)
    response = _password_step(client)
    assert response.headers["Location"] == "/accounts/2fa/authenticate/"
    page = client.get("/accounts/2fa/authenticate/")
    assert b"Use a security key" in page.content
    options = page.context["js_data"]["request_options"]
    response = client.post(
        "/accounts/2fa/authenticate/", {"credential": json.dumps(security_key.assertion(_challenge(options)))}
    )
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(officer.pk)
    assert client.get("/").status_code == 200
    key.refresh_from_db()
    assert key.last_used_at is not None
    assert AuditEvent.objects.filter(action="auth.mfa_passed", details__type="webauthn").exists()


@pytest.mark.parametrize("tamper", ["other-origin", "other-key", "replayed-challenge"], ids=lambda value: value)
def test_a_security_key_answer_that_does_not_verify_is_refused(localhost_client, officer, security_key, tamper):
    client = localhost_client
    _add_security_key(officer, security_key)
    _password_step(client)
    challenge = _challenge(client.get("/accounts/2fa/authenticate/").context["js_data"]["request_options"])
    if tamper == "other-origin":
        answer = security_key.assertion(challenge, origin="https://phish.example")
    elif tamper == "other-key":
        impostor = SoftwareSecurityKey()
        impostor.credential_id = security_key.credential_id
        answer = impostor.assertion(challenge)
    else:
        answer = security_key.assertion("b2xkLWNoYWxsZW5nZQ")
    response = client.post("/accounts/2fa/authenticate/", {"credential": json.dumps(answer)})
    assert response.status_code == 200 and b"Incorrect code" in response.content
    assert "_auth_user_id" not in client.session
    assert AuditEvent.objects.filter(action="auth.mfa_failed", target_id=str(officer.pk)).count() == 1


def test_a_session_that_has_not_passed_the_security_key_is_sent_to_its_challenge(
    localhost_client, officer, security_key
):
    _add_security_key(officer, security_key)
    localhost_client.force_login(officer)  # a session with no second factor on record
    response = localhost_client.get("/customers/")
    assert response.status_code == 302
    assert response.headers["Location"] == "/accounts/2fa/webauthn/reauthenticate/?next=/customers/"
    assert localhost_client.get("/accounts/2fa/webauthn/reauthenticate/?next=/customers/").status_code == 200


@pytest.mark.parametrize(
    "url",
    [
        "/accounts/2fa/webauthn/add/",
        "/accounts/2fa/totp/activate/",
        "/accounts/2fa/recovery-codes/",
        "/accounts/reauthenticate/",
        "/accounts/2fa/",
    ],
)
def test_a_session_that_has_not_passed_its_factor_cannot_set_up_another(localhost_client, officer, officer_secret, url):
    """Reauthenticating with the password must not lead around the factor the user already has."""
    localhost_client.force_login(officer)
    response = localhost_client.get(url)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/accounts/2fa/reauthenticate/?next=")


def test_staff_cannot_remove_their_only_security_key(officer, security_key):
    from fintech.core.accounts import MFAAdapter

    key = _add_security_key(officer, security_key)
    recovery_codes = RecoveryCodes.activate(officer).instance
    adapter = MFAAdapter()
    assert not adapter.can_delete_authenticator(key)  # recovery codes are no second factor
    backup = _add_security_key(officer, SoftwareSecurityKey(), name="Backup key")
    assert adapter.can_delete_authenticator(key) and adapter.can_delete_authenticator(backup)
    backup.delete()
    TOTP.activate(officer, generate_totp_secret())
    assert adapter.can_delete_authenticator(key)
    assert adapter.can_delete_authenticator(recovery_codes)


def test_staff_cannot_remove_their_only_security_key_through_the_page(localhost_client, officer, security_key):
    from allauth.account.internal.flows.login import AUTHENTICATION_METHODS_SESSION_KEY

    from tests.utils import login_with_mfa

    key = _add_security_key(officer, security_key)
    login_with_mfa(localhost_client, officer)
    session = localhost_client.session  # reauthenticated just now, so only the last-factor rule applies
    session[AUTHENTICATION_METHODS_SESSION_KEY][-1]["reauthenticated"] = True
    session.save()
    response = localhost_client.post(f"/accounts/2fa/webauthn/keys/{key.pk}/remove/", follow=True)
    assert response.redirect_chain == [("/accounts/2fa/webauthn/", 302)]
    assert b"You cannot deactivate two-factor authentication." in response.content
    assert Authenticator.objects.filter(pk=key.pk).exists()

    backup = _add_security_key(officer, SoftwareSecurityKey(), name="Backup key")
    response = localhost_client.post(f"/accounts/2fa/webauthn/keys/{key.pk}/remove/")
    assert response.status_code == 302
    assert list(Authenticator.objects.filter(type=Authenticator.Type.WEBAUTHN)) == [backup]
    assert AuditEvent.objects.filter(action="auth.mfa_removed", details__type="webauthn").count() == 1


def test_customers_may_remove_their_last_security_key(security_key):
    from fintech.core.accounts import MFAAdapter

    customer = UserFactory(username="customer")
    assert MFAAdapter().can_delete_authenticator(_add_security_key(customer, security_key))


def test_a_recent_password_stops_standing_in_for_reauthentication_once_a_security_key_exists(
    localhost_client, officer, security_key, rf
):
    from allauth.core import context

    from fintech.core.accounts import AccountAdapter

    _password_step(localhost_client)
    request = rf.get("/")
    request.user, request.session = officer, localhost_client.session
    with context.request_context(request):
        assert not AccountAdapter().is_reauthentication_required(app="allauth.mfa")
        _add_security_key(officer, security_key)
        assert AccountAdapter().is_reauthentication_required(app="allauth.mfa")


@pytest.mark.parametrize(
    "url", ["/accounts/2fa/authenticate/", "/accounts/2fa/webauthn/add/", "/accounts/2fa/webauthn/reauthenticate/"]
)
def test_security_key_pages_run_no_inline_script(localhost_client, officer, security_key, url):
    """Under the CSP (no 'unsafe-inline'), every script is a same-origin file or a JSON data block."""
    import re

    if url == "/accounts/2fa/authenticate/":
        _add_security_key(officer, security_key)
        _password_step(localhost_client)
    elif url == "/accounts/2fa/webauthn/add/":
        _password_step(localhost_client)
    else:
        _add_security_key(officer, security_key)
        from tests.utils import login_with_mfa

        login_with_mfa(localhost_client, officer)
    response = localhost_client.get(url)
    assert response.status_code == 200
    policy = response.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    scripts = re.findall(rb"<script\b([^>]*)>", response.content)
    assert scripts
    for attributes in scripts:
        assert re.search(rb'\bsrc="/static/', attributes) or b'type="application/json"' in attributes, attributes
    assert not re.search(rb"\son[a-z]+=", response.content)  # no inline event handlers


def test_passkey_sign_in_without_a_password_is_off(localhost_client):
    from django.conf import settings

    assert localhost_client.get("/accounts/2fa/webauthn/login/").status_code == 404
    assert settings.MFA_WEBAUTHN_ALLOW_INSECURE_ORIGIN is False


def test_the_relying_party_id_can_be_pinned(localhost_client, officer, settings):
    settings.WEBAUTHN_RP_ID = "localhost.test"
    _password_step(localhost_client)
    options = localhost_client.get("/accounts/2fa/webauthn/add/").context["js_data"]["creation_options"]
    assert options["publicKey"]["rp"]["id"] == "localhost.test"
