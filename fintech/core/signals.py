"""Receivers that copy events other code announces into the audit trail (no other effects)."""

from allauth.account.internal.flows.login import record_authentication
from allauth.mfa.models import Authenticator
from allauth.mfa.signals import authentication_failed as mfa_authentication_failed
from allauth.mfa.signals import authenticator_added, authenticator_removed, authenticator_used
from axes.signals import user_locked_out
from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.contrib.contenttypes.models import ContentType
from django.db.models.signals import post_save
from django.dispatch import receiver

from .audit import audit_record

ADMIN_ACTIONS = {ADDITION: "admin.added", CHANGE: "admin.changed", DELETION: "admin.deleted"}


@receiver(post_save, sender=LogEntry, dispatch_uid="core.audit_admin_change")
def audit_admin_change(sender, instance: LogEntry, created: bool, **kwargs) -> None:
    """Every change staff make in the Django admin also enters the tamper-evident trail."""
    if not created:
        return
    content_type = ContentType.objects.get_for_id(instance.content_type_id) if instance.content_type_id else None
    target_type = f"{content_type.app_label}.{content_type.model}" if content_type else "unknown"
    audit_record(
        actor=instance.user,
        action=ADMIN_ACTIONS.get(instance.action_flag, "admin.changed"),
        target=(target_type, instance.object_id or ""),
        details={"object": instance.object_repr, "change": instance.get_change_message()},
    )


@receiver(user_logged_in, dispatch_uid="core.audit_login")
def audit_login(sender, request, user, **kwargs) -> None:
    audit_record(actor=user, action="auth.login", target=user, request=request)


@receiver(user_logged_out, dispatch_uid="core.audit_logout")
def audit_logout(sender, request, user, **kwargs) -> None:
    if user is not None:
        audit_record(actor=user, action="auth.logout", target=user, request=request)


@receiver(user_login_failed, dispatch_uid="core.audit_login_failed")
def audit_login_failed(sender, credentials, request=None, **kwargs) -> None:
    # Only the username tried; Django has already masked the password in ``credentials``.
    username = str(credentials.get("username", ""))[:150]
    audit_record(actor=None, action="auth.login_failed", details={"username": username}, request=request)


@receiver(authenticator_added, dispatch_uid="core.mfa_added")
def mfa_added(sender, request, user, authenticator, **kwargs) -> None:
    """Setting up a factor proves possession of it: the session counts as having passed MFA."""
    if authenticator.type != Authenticator.Type.RECOVERY_CODES:
        record_authentication(request, user, "mfa", id=authenticator.pk, type=authenticator.type)
        request.session.cycle_key()  # a new session key after each step that raises assurance
    audit_record(
        actor=user, action="auth.mfa_added", target=user, details={"type": authenticator.type}, request=request
    )


@receiver(authenticator_used, dispatch_uid="core.mfa_used")
def mfa_used(sender, request, user, authenticator, reauthenticated=False, **kwargs) -> None:
    if reauthenticated:
        request.session.cycle_key()
    audit_record(
        actor=user,
        action="auth.mfa_reauthenticated" if reauthenticated else "auth.mfa_passed",
        target=user,
        details={"type": authenticator.type},
        request=request,
    )


@receiver(authenticator_removed, dispatch_uid="core.mfa_removed")
def mfa_removed(sender, request, user, authenticator, **kwargs) -> None:
    audit_record(
        actor=user, action="auth.mfa_removed", target=user, details={"type": authenticator.type}, request=request
    )


@receiver(user_locked_out, dispatch_uid="core.audit_locked_out")
def audit_locked_out(sender, request, username, ip_address, **kwargs) -> None:
    audit_record(actor=None, action="auth.locked_out", details={"username": str(username)[:150]}, request=request)


@receiver(mfa_authentication_failed, dispatch_uid="core.audit_mfa_failed")
def audit_mfa_failed(sender, request, user, authenticator, reauthentication=False, **kwargs) -> None:
    audit_record(
        actor=None, action="auth.mfa_failed", target=user, details={"type": authenticator.type}, request=request
    )
