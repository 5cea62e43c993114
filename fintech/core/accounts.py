"""Sign-in and second factors: django-allauth adapters and the staff MFA requirement.

- TOTP and recovery-code secrets are encrypted with the field-encryption keyring before
  allauth stores them (its default adapter stores them in clear).
- Every staff session must have passed a second factor: until it has, it reaches only the MFA
  set-up and challenge pages (``StaffMFARequiredMiddleware``), for the dashboard and the admin.
- Staff cannot remove their last second factor.
"""

from __future__ import annotations

import base64
import logging
import time
from urllib.parse import quote

from allauth.account import app_settings as account_settings
from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.authentication import get_authentication_records
from allauth.mfa.adapter import DefaultMFAAdapter
from allauth.mfa.models import Authenticator
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import Resolver404, resolve, reverse

from .crypto import DecryptionError, keyring

security_log = logging.getLogger("fintech.security")
MFA_CIPHERTEXT_PREFIX = "fintech:v1:"
MFA_ASSOCIATED_DATA = "mfa_authenticator.data"
# Pages a staff session without a second factor may still open.
MFA_SETUP_URL_NAMES = {
    "mfa_activate_totp",
    "mfa_authenticate",
    "mfa_reauthenticate",
    "mfa_index",
    "mfa_view_recovery_codes",
    "mfa_download_recovery_codes",
    "account_reauthenticate",
    "account_logout",
    "healthz",
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
        if Authenticator.objects.filter(
            user=request.user, type__in=[Authenticator.Type.TOTP, Authenticator.Type.WEBAUTHN]
        ).exists():
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
        others = Authenticator.objects.filter(
            user=user, type__in=[Authenticator.Type.TOTP, Authenticator.Type.WEBAUTHN]
        )
        return others.exclude(pk=authenticator.pk).exists()

    def get_totp_issuer(self) -> str:
        return "Fintech Ops"


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
            if url_name not in MFA_SETUP_URL_NAMES and not request.path_info.startswith("/static/"):
                has_factor = Authenticator.objects.filter(
                    user=user, type__in=[Authenticator.Type.TOTP, Authenticator.Type.WEBAUTHN]
                ).exists()
                target = reverse("mfa_reauthenticate" if has_factor else "mfa_activate_totp")
                return redirect(f"{target}?next={quote(request.get_full_path())}")
        return self.get_response(request)


def axes_username(request: HttpRequest, credentials: dict | None) -> str | None:
    """The username django-axes counts failures against: allauth authenticates with
    ``username``, while its sign-in form posts the field ``login``."""
    username = credentials.get("username") if credentials else None
    if not username and request is not None:
        username = request.POST.get("login")
    # allauth matches usernames case-insensitively: so must the count, or "STAFF" gets 10 more tries.
    return str(username).strip().casefold() if username else None
