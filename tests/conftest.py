import pytest
import redis
from django.conf import settings

from tests.factories import StaffUserFactory, UserFactory
from tests.utils import login_with_mfa

ALL_ROLES = ["ops", "compliance", "admin"]


@pytest.fixture(autouse=True)
def empty_cache():
    """Each test starts with no cache entries of this run (rate limits, used TOTP codes...).

    Only this run's keys are deleted: the Redis may be shared with a running `make run`.
    """
    yield
    prefix = settings.CACHES["default"]["KEY_PREFIX"]
    client = redis.Redis.from_url(settings.REDIS_URL)
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


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
