"""The admin role manages staff in the Django admin but cannot raise its own powers."""

import pytest
from django.contrib.auth.models import Group, Permission

from tests.factories import StaffUserFactory, UserFactory
from tests.utils import login_with_mfa

pytestmark = pytest.mark.django_db


@pytest.fixture
def administrator(client):
    user = StaffUserFactory(username="root-of-staff", roles=["admin"])
    login_with_mfa(client, user)
    return user


def _change_form(user, **overrides) -> dict:
    data = {
        "username": user.username,
        "first_name": "",
        "last_name": "",
        "email": user.email or "",
        "is_active": "on",
        "is_staff": "on",
        "groups": [str(pk) for pk in user.groups.values_list("pk", flat=True)],
        "date_joined_0": "2026-01-01",
        "date_joined_1": "00:00:00",
        "initial-date_joined_0": "2026-01-01",
        "initial-date_joined_1": "00:00:00",
    }
    data.update(overrides)
    return data


def test_an_administrator_puts_another_staff_member_in_a_role(client, administrator):
    ops = Group.objects.get(name="ops")
    colleague = StaffUserFactory(username="new-hire")
    response = client.post(f"/admin/auth/user/{colleague.pk}/change/", _change_form(colleague, groups=[str(ops.pk)]))
    assert response.status_code == 302, response.content[:2000]
    assert list(colleague.groups.values_list("name", flat=True)) == ["ops"]


def test_an_administrator_cannot_grant_superuser_or_single_permissions(client, administrator):
    colleague = StaffUserFactory(username="new-hire")
    reveal = Permission.objects.get(codename="reveal_sensitive")
    form = _change_form(colleague, is_superuser="on", user_permissions=[str(reveal.pk)])
    assert client.post(f"/admin/auth/user/{colleague.pk}/change/", form).status_code == 302
    colleague.refresh_from_db()
    assert not colleague.is_superuser and not colleague.user_permissions.exists()


def test_an_administrator_cannot_change_their_own_roles(client, administrator):
    compliance = Group.objects.get(name="compliance")
    form = _change_form(administrator, groups=[str(compliance.pk)], is_superuser="on")
    client.post(f"/admin/auth/user/{administrator.pk}/change/", form)
    administrator.refresh_from_db()
    assert list(administrator.groups.values_list("name", flat=True)) == ["admin"]
    assert not administrator.is_superuser


def test_an_administrator_cannot_change_a_superuser_or_a_roles_permissions(client, administrator):
    superuser = UserFactory(username="owner", is_staff=True, is_superuser=True)
    form = _change_form(superuser, is_active="")
    assert client.post(f"/admin/auth/user/{superuser.pk}/change/", form).status_code == 403
    superuser.refresh_from_db()
    assert superuser.is_active

    admin_role = Group.objects.get(name="admin")
    before = set(admin_role.permissions.values_list("pk", flat=True))
    everything = [str(pk) for pk in Permission.objects.values_list("pk", flat=True)]
    client.post(f"/admin/auth/group/{admin_role.pk}/change/", {"name": "admin", "permissions": everything})
    assert set(admin_role.permissions.values_list("pk", flat=True)) == before
    assert client.get("/admin/auth/group/add/").status_code == 403
