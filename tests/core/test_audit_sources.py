"""What enters the audit trail on its own: admin changes, sign-ins, failed sign-ins, sign-outs."""

import pytest
from django.contrib.auth.models import Group

from fintech.core.models import AuditEvent
from tests.factories import DEFAULT_PASSWORD
from tests.utils import login_with_mfa

pytestmark = pytest.mark.django_db


def test_changes_in_the_admin_are_audited(client, django_user_model):
    admin = django_user_model.objects.create_superuser("root", "root@example.test", DEFAULT_PASSWORD)
    login_with_mfa(client, admin)
    response = client.post("/admin/auth/group/add/", {"name": "auditors"})
    assert response.status_code == 302
    group = Group.objects.get(name="auditors")
    client.post(f"/admin/auth/group/{group.pk}/delete/", {"post": "yes"})
    added, deleted = AuditEvent.objects.filter(action__startswith="admin.").order_by("seq")
    assert (added.action, added.actor_label, added.target_type, added.target_id) == (
        "admin.added",
        "root",
        "auth.group",
        str(group.pk),
    )
    assert added.details["object"] == "auditors"
    assert (deleted.action, deleted.target_id) == ("admin.deleted", str(group.pk))


def test_sign_in_sign_out_and_failures_are_audited_without_passwords(client, staff_user):
    client.post("/accounts/login/", {"login": "staff", "password": "wrong-password-123"}, REMOTE_ADDR="198.51.100.4")
    client.post("/accounts/login/", {"login": "staff", "password": DEFAULT_PASSWORD})
    client.post("/accounts/logout/")
    events = list(AuditEvent.objects.order_by("seq"))
    assert [event.action for event in events] == ["auth.login_failed", "auth.login", "auth.logout"]
    failed = events[0]
    assert (failed.actor_type, failed.details, failed.ip_address) == (
        "anonymous",
        {"username": "staff"},
        "198.51.100.4",
    )
    assert (events[1].actor_label, events[1].target_id) == ("staff", str(staff_user.pk))
    assert not AuditEvent.objects.filter(details__icontains="wrong-password").exists()
