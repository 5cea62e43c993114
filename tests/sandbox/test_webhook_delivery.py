"""Webhook delivery: retries, duplicates, shuffling, and the deliveries log."""

import json

import stripe
from django.conf import settings

from tests.sandbox.conftest import wait_for


def _payments(client, count: int, **options) -> list[str]:
    return [
        client.v1.payment_intents.create(
            params={"amount": 1000 + index, "currency": "usd", "payment_method": "pm_card_visa", "confirm": True},
            options=options,
        ).id
        for index in range(count)
    ]


def test_failed_deliveries_are_retried_until_the_app_accepts_them(stripe_client, receiver, control):
    receiver.fail_first = 2
    (intent_id,) = _payments(stripe_client, 1)

    wait_for(lambda: len(receiver.stripe_events()) == 3, what="all three events accepted")
    # The receiver records an event before its answer reaches the stand-in, which then marks it.
    wait_for(
        lambda: {delivery["state"] for delivery in control.deliveries()} == {"delivered"},
        what="the stand-in to record the last answer",
    )
    deliveries = control.deliveries()
    assert len(deliveries) == 3
    assert sum(len(delivery["attempts"]) for delivery in deliveries) == 3 + 2
    created = control.deliveries(type="payment_intent.created")[0]
    assert [attempt["status_code"] for attempt in created["attempts"]] == [500, 200]
    assert created["object_id"] == intent_id
    # every attempt is signed afresh, and each verifies
    for request in receiver.requests:
        stripe.Webhook.construct_event(
            request["body"], request["headers"]["Stripe-Signature"], settings.STRIPE_WEBHOOK_SECRETS[0]
        )


def test_retries_stop_after_the_configured_attempts(stripe_client, receiver, control):
    control.post("config", {"retry_max_attempts": 2})
    receiver.fail_first = 1000
    _payments(stripe_client, 1)

    wait_for(lambda: all(d["state"] == "failed" for d in control.deliveries()), what="deliveries to give up")
    assert {len(delivery["attempts"]) for delivery in control.deliveries()} == {2}
    assert {delivery["status_code"] for delivery in control.deliveries()} == {500}


def test_an_unreachable_endpoint_is_recorded_as_a_connection_error(stripe_client, control):
    control.post("config", {"webhook_target": "http://127.0.0.1:9", "retry_max_attempts": 1})
    _payments(stripe_client, 1)
    wait_for(lambda: all(d["state"] == "failed" for d in control.deliveries()), what="deliveries to fail")
    attempt = control.deliveries()[0]["attempts"][0]
    assert attempt["status_code"] is None and attempt["error"]


def test_duplicate_rate_one_delivers_every_event_twice(stripe_client, receiver, control):
    control.post("config", {"duplicate_rate": 1.0})
    _payments(stripe_client, 2)

    wait_for(lambda: len(receiver.stripe_events()) == 12, what="six events, twice each")
    ids = [event["id"] for event in receiver.stripe_events()]
    assert len(set(ids)) == 6
    assert all(ids.count(event_id) == 2 for event_id in ids)
    assert sum(delivery["duplicate"] for delivery in control.deliveries()) == 6


def test_a_request_header_duplicates_that_requests_events(stripe_client, receiver):
    _payments(stripe_client, 1, headers={"Sandbox-Duplicate-Webhooks": "2"})
    wait_for(lambda: len(receiver.stripe_events()) == 9, what="three events, three times each")
    assert len({event["id"] for event in receiver.stripe_events()}) == 3


def test_a_shuffle_window_delivers_everything_once_but_out_of_order(stripe_client, receiver, control):
    control.post("config", {"shuffle_window": 8, "seed": 7})
    _payments(stripe_client, 10)

    wait_for(lambda: len(receiver.stripe_events()) == 30, what="thirty events")
    delivered = [event["id"] for event in receiver.stripe_events()]
    created = [delivery["event_id"] for delivery in control.deliveries()]
    assert sorted(delivered) == sorted(created)
    assert len(set(delivered)) == 30
    assert delivered != created


def test_delays_still_deliver_everything(stripe_client, receiver, control):
    control.post("config", {"delay_ms": [0, 200]})
    _payments(stripe_client, 3)
    wait_for(lambda: len(receiver.stripe_events()) == 9, what="nine events")


def test_webhooks_can_be_switched_off_and_the_log_keeps_bodies_on_request(stripe_client, receiver, control):
    control.post("config", {"webhooks_enabled": False})
    _payments(stripe_client, 1)
    assert {delivery["state"] for delivery in control.deliveries()} == {"skipped"}
    body = json.loads(control.deliveries(body="1")[0]["body"])
    assert body["object"] == "event"
    assert receiver.requests == []


def test_the_control_api_refuses_bad_settings_and_non_json(control):
    for payload in ({"duplicate_rate": 2}, {"shuffle_window": -1}, {"delay_ms": [5, 1]}, {"colour": "red"}):
        status, body = control.call("POST", "config", payload)
        assert status == 400, payload
        assert body["error"]
    status, _ = control.call("POST", "config", {"duplicate_rate": 0.5}, content_type="text/plain")
    assert status == 415
    status, config = control.call("GET", "config")
    assert status == 200 and config["duplicate_rate"] == 0


def test_reset_forgets_everything(stripe_client, control):
    _payments(stripe_client, 1)
    control.post("reset")
    assert stripe_client.v1.payment_intents.list().data == []
    assert control.deliveries() == []
