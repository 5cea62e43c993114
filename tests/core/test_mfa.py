"""Staff MFA: mandatory for dashboard and admin, TOTP secrets encrypted, codes single-use,
a new session key after every step."""

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret

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
