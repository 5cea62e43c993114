import pytest

from tests.factories import StaffUserFactory, UserFactory


@pytest.fixture
def staff_user(db):
    return StaffUserFactory(username="staff")


@pytest.fixture
def customer_user(db):
    return UserFactory(username="customer")


@pytest.fixture
def staff_client(client, staff_user):
    client.force_login(staff_user)
    return client
