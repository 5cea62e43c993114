"""The screening API: POST /api/screening/search with an API key holding compliance.use_screening_api."""

from __future__ import annotations

import hashlib
import json

import pytest
from django.contrib.auth.models import Permission

from fintech.core.audit import SystemActor
from fintech.core.models import AuditEvent
from payments.checkout import api_key_create
from tests.compliance import test_review_support as support
from tests.compliance.test_review_support import company, load_version, person
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

# Fixtures shared with the other review tests.
fresh_screener = support.fresh_screener
URL = "/api/screening/search"


def _key(*, allowed: bool = True) -> str:
    user = UserFactory(username="screening-client" if allowed else "other-client")
    if allowed:
        user.user_permissions.add(Permission.objects.get(codename="use_screening_api"))
    _, key = api_key_create(user=user, name="back office", actor=SystemActor("tests"))
    return key


def _post(client, key: str | None, body, **extra):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"} if key else {}
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(URL, data=data, content_type="application/json", **headers, **extra)


@pytest.fixture
def lists():
    load_version(
        [
            person("100", "Ivan Petrovich Sidorov", dob="1961-03-02", countries=["RU"]),
            company("200", "Acme Trading LLC", countries=["IR"]),
        ]
    )


def test_a_search_answers_scored_entities_and_is_audited_without_the_name(client, lists):
    key = _key()
    response = _post(client, key, {"name": "Ivan Petrovich Sidorov", "date_of_birth": "1961-03-02", "country": "ru"})
    assert response.status_code == 200
    (result,) = response.json()["results"]
    assert (result["source"], result["key"], result["primary_name"]) == ("ofac_sdn", "100", "Ivan Petrovich Sidorov")
    assert result["matched_name_kind"] == "primary" and 0.9 <= result["score"] <= 1
    assert result["entity"] == {
        "type": "individual",
        "programs": ["SDGT"],
        "dates_of_birth": ["1961-03-02"],
        "nationalities": ["RU"],
        "countries": ["RU"],
    }
    assert result["explanation"]["alignment"]
    event = AuditEvent.objects.get(action="compliance.screening_searched")
    assert event.actor_label == "screening-client"
    assert event.details["results"] == 1 and event.details["country"] == "RU"
    assert event.details["name_sha256"] == hashlib.sha256(b"Ivan Petrovich Sidorov").hexdigest()
    assert "Sidorov" not in json.dumps(event.details)

    nothing = _post(client, key, {"name": "Grace Hopper", "type": "individual", "limit": 5})
    assert nothing.status_code == 200 and nothing.json() == {"results": []}


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": ""},
        {"name": "   "},
        {"name": "---"},
        {"name": 42},
        {"name": "x" * 301},
        {"name": "Ivan", "unknown": 1},
        {"name": "Ivan", "date_of_birth": "02/03/1961"},
        {"name": "Ivan", "date_of_birth": 1961},
        {"name": "Ivan", "date_of_birth": "2999-01-01"},
        {"name": "Ivan", "country": "RUS"},
        {"name": "Ivan", "country": "1x"},
        {"name": "Ivan", "type": "robot"},
        {"name": "Ivan", "limit": 0},
        {"name": "Ivan", "limit": "5"},
        {"name": "Ivan", "limit": 1000},
        ["Ivan"],
        "not json",
    ],
)
def test_bad_input_is_refused_with_400_and_nothing_is_recorded(client, lists, body):
    response = _post(client, _key(), body)
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] in {"invalid_request", "malformed_request"}
    assert not AuditEvent.objects.filter(action="compliance.screening_searched").exists()


def test_an_oversized_body_is_refused_with_413(client, lists, settings):
    settings.API_MAX_BODY_BYTES = 1024
    response = _post(client, _key(), {"name": "x" * 2000})
    assert response.status_code == 413


def test_a_key_without_the_screening_permission_is_refused(client, lists):
    assert _post(client, None, {"name": "Ivan"}).status_code == 401
    assert _post(client, "fk_test_nonsense", {"name": "Ivan"}).status_code == 401
    response = _post(client, _key(allowed=False), {"name": "Ivan"})
    assert response.status_code == 403
    assert "compliance.use_screening_api" in response.json()["error"]["message"]
    assert not AuditEvent.objects.filter(action="compliance.screening_searched").exists()


def test_searches_are_throttled_per_key(client, lists, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"api_key": "2/minute"}}
    key = _key()
    statuses = [_post(client, key, {"name": "Grace Hopper"}).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


def test_the_openapi_schema_describes_the_search(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    document = json.loads(schema.content)
    operation = document["paths"]["/api/screening/search"]["post"]
    assert operation["operationId"] == "screening_search"
    assert "200" in operation["responses"] and "400" in operation["responses"]
    request_schema = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert set(document["components"]["schemas"][request_schema]["properties"]) == {
        "name",
        "date_of_birth",
        "country",
        "type",
        "limit",
    }
