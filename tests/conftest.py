import pytest

from tests.factories import StaffUserFactory, UserFactory
from tests.utils import login_with_mfa

ALL_ROLES = ["ops", "compliance", "admin"]


@pytest.fixture
def staff_user(db):
    """A staff member holding every role."""
    return StaffUserFactory(username="staff", roles=ALL_ROLES)


@pytest.fixture
def customer_user(db):
    return UserFactory(username="customer")


@pytest.fixture
def staff_client(client, staff_user):
    login_with_mfa(client, staff_user)
    return client
