"""Sign-in and second factors: django-allauth adapters and the staff MFA requirement.

- TOTP and recovery-code secrets are encrypted with the field-encryption keyring before
  allauth stores them (its default adapter stores them in clear). WebAuthn security keys are
  stored as allauth keeps them: their credential holds a public key, nothing secret.
- Every staff session must have passed a second factor: until it has, it reaches only the MFA
  set-up and challenge pages (``StaffMFARequiredMiddleware``), for the dashboard and the admin.
- Staff cannot remove their last second factor: a TOTP device or a WebAuthn security key.
- A security-key answer that does not verify is a failed second-factor attempt like a wrong code
  (counted against the same limit, announced for the audit trail).
"""

from __future__ import annotations

import base64
import logging
import time
from urllib.parse import quote

from allauth.account import app_settings as account_settings
from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.authentication import get_authentication_records
from allauth.core import context
from allauth.mfa import signals as mfa_signals
from allauth.mfa.adapter import DefaultMFAAdapter, get_adapter
from allauth.mfa.models import Authenticator
from allauth.mfa.webauthn import forms as webauthn_forms
from allauth.mfa.webauthn.views import RemoveWebAuthnView
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect
from django.urls import Resolver404, resolve, reverse

from .crypto import DecryptionError, keyring

security_log = logging.getLogger("fintech.security")
MFA_CIPHERTEXT_PREFIX = "fintech:v1:"
MFA_ASSOCIATED_DATA = "mfa_authenticator.data"
# The factors that count as a second factor (recovery codes only stand in for one).
SECOND_FACTOR_TYPES = (Authenticator.Type.TOTP, Authenticator.Type.WEBAUTHN)
# Pages a staff session that has not passed a second factor may open: the challenges, always.
MFA_CHALLENGE_URL_NAMES = {
    "mfa_authenticate",
    "mfa_reauthenticate",
    "mfa_reauthenticate_webauthn",
    "account_logout",
    "healthz",
}
# And, only while the user has no second factor at all, setting up the first one. Someone who has
# a factor answers its challenge: reauthenticating with the password alone must not let them add
# another factor or read recovery codes, which would step around the one they have.
MFA_SETUP_URL_NAMES = MFA_CHALLENGE_URL_NAMES | {
    "mfa_activate_totp",
    "mfa_add_webauthn",
    "mfa_index",
    "mfa_view_recovery_codes",
    "mfa_download_recovery_codes",
    "account_reauthenticate",
}


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest) -> bool:
        # Staff accounts are created by administrators; customer sign-up opens with the banking pages.
        return False

    def is_reauthentication_required(self, *, app: str, **kwargs) -> bool:
        """Someone who has just signed in with a password and has no second factor yet sets one
        up without typing the password again. Anyone who has a factor reauthenticates as usual
        (with it) before changing their factors."""
        if not super().is_reauthentication_required(app=app, **kwargs):
            return False
        request = self.request
        if request is None or not request.user.is_authenticated:
            return True
        if Authenticator.objects.filter(user=request.user, type__in=SECOND_FACTOR_TYPES).exists():
            return True
        timeout = account_settings.REAUTHENTICATION_TIMEOUT
        return not any(
            record.get("method") == "password" and time.time() - record.get("at", 0) < timeout
            for record in get_authentication_records(request, request.user)
        )


class MFAAdapter(DefaultMFAAdapter):
    def encrypt(self, text: str) -> str:
        stored = keyring().encrypt(text.encode(), associated_data=MFA_ASSOCIATED_DATA)
        return MFA_CIPHERTEXT_PREFIX + base64.b64encode(stored).decode()

    def decrypt(self, encrypted_text: str) -> str:
        """The secret in clear; a secret that cannot be read refuses the sign-in step (403).

        Stored in clear, tampered with, or under a key no longer in the keyring: the factor is
        unusable until an administrator resets it. The reason goes to the security log, never
        the value.
        """
        try:
            if not encrypted_text.startswith(MFA_CIPHERTEXT_PREFIX):
                raise DecryptionError("an MFA secret is stored unencrypted; refusing to use it")
            stored = base64.b64decode(encrypted_text[len(MFA_CIPHERTEXT_PREFIX) :], validate=True)
            return keyring().decrypt(stored, associated_data=MFA_ASSOCIATED_DATA).decode()
        except (DecryptionError, ValueError) as error:
            security_log.error("second factor unusable: %s", error)
            raise PermissionDenied(
                "Your second factor cannot be read. Ask an administrator to reset it; nothing was changed."
            ) from None

    def can_delete_authenticator(self, authenticator: Authenticator) -> bool:
        user = authenticator.user
        if not user.is_staff:
            return True
        others = Authenticator.objects.filter(user=user, type__in=SECOND_FACTOR_TYPES)
        return others.exclude(pk=authenticator.pk).exists()

    def get_totp_issuer(self) -> str:
        return "Fintech Ops"

    def get_public_key_credential_rp_entity(self) -> dict[str, str]:
        """The relying party a security key is bound to: ``WEBAUTHN_RP_ID`` when set, else the
        request's host name (already checked against ALLOWED_HOSTS). The browser refuses an id
        that is not the page's host or a parent domain of it, and fido2 checks the origin again."""
        entity = super().get_public_key_credential_rp_entity()
        return {"id": settings.WEBAUTHN_RP_ID or entity["id"], "name": "Fintech Ops"}


class AuthenticateWebAuthnForm(webauthn_forms.AuthenticateWebAuthnForm):
    """allauth's security-key challenge, with a failed answer announced like a wrong TOTP code
    (allauth announces only those), so the audit trail records it as ``auth.mfa_failed``."""

    def clean_credential(self) -> Authenticator:
        try:
            return super().clean_credential()
        except ValidationError as error:
            if error.code == "incorrect_code" and self.user is not None:
                self._announce_failure()
            raise

    def _announce_failure(self) -> None:
        factors = Authenticator.objects.filter(user=self.user, type__in=SECOND_FACTOR_TYPES)
        authenticator = factors.filter(type=Authenticator.Type.WEBAUTHN).first() or factors.first()
        if authenticator is not None:
            mfa_signals.authentication_failed.send(
                sender=Authenticator,
                request=context.request,
                user=self.user,
                authenticator=authenticator,
                reauthentication=self.reauthenticated,
            )


class ReauthenticateWebAuthnForm(AuthenticateWebAuthnForm):
    reauthenticated = True


class StaffRemoveWebAuthnView(RemoveWebAuthnView):
    """allauth's "remove security key" page, which asks the adapter first (allauth asks it only
    before removing a TOTP device): staff keep at least one second factor."""

    def form_valid(self, form) -> HttpResponse:
        if not get_adapter().can_delete_authenticator(self.get_object()):
            messages.error(self.request, get_adapter().error_messages["cannot_delete_authenticator"])
            return HttpResponseRedirect(reverse("mfa_list_webauthn"))
        return super().form_valid(form)


remove_webauthn = StaffRemoveWebAuthnView.as_view()


def session_passed_mfa(request: HttpRequest) -> bool:
    records = get_authentication_records(request, request.user)
    return any(record.get("method") == "mfa" for record in records)


class StaffMFARequiredMiddleware:
    """A staff session that has not passed a second factor reaches only the MFA pages."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        if user.is_authenticated and user.is_staff and not session_passed_mfa(request):
            try:
                url_name = resolve(request.path_info).url_name
            except Resolver404:
                url_name = None
            if url_name not in MFA_CHALLENGE_URL_NAMES and not request.path_info.startswith("/static/"):
                factors = set(
                    Authenticator.objects.filter(user=user, type__in=SECOND_FACTOR_TYPES).values_list("type", flat=True)
                )
                if factors or url_name not in MFA_SETUP_URL_NAMES:
                    target = reverse(challenge_url_name(factors))
                    return redirect(f"{target}?next={quote(request.get_full_path())}")
        return self.get_response(request)


def challenge_url_name(factors: set[str]) -> str:
    """Where a staff session that has not passed a factor goes: the challenge of a factor the user
    has (the code page when TOTP is among them), else setting up a first one."""
    if Authenticator.Type.TOTP in factors:
        return "mfa_reauthenticate"
    if Authenticator.Type.WEBAUTHN in factors:
        return "mfa_reauthenticate_webauthn"
    return "mfa_activate_totp"


def axes_username(request: HttpRequest, credentials: dict | None) -> str | None:
    """The username django-axes counts failures against: allauth authenticates with
    ``username``, while its sign-in form posts the field ``login``."""
    username = credentials.get("username") if credentials else None
    if not username and request is not None:
        username = request.POST.get("login")
    # allauth matches usernames case-insensitively: so must the count, or "STAFF" gets 10 more tries.
    return str(username).strip().casefold() if username else None
