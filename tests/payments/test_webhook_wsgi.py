"""The webhook endpoints through the WSGI handler that gunicorn serves them with (fintech.wsgi).

django.test.Client uses Django's default handler, so these tests call the WSGI callable itself
with a WSGI environ, as gunicorn does: same answers, same stored rows, same refusal audit, and
the drain flag set for the burst.
"""

from __future__ import annotations

import io
import json
from urllib.parse import urlencode

import psycopg
import pytest
import redis
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.urls import resolve

from fintech.core.models import AuditEvent
from fintech.wsgi import WebhookWSGIHandler, application, default_application, webhook_application
from payments import inbox
from payments.inbox import DRAIN_FLAG, webhook_drain
from payments.models import Payment, WebhookEvent

from .deliveries import braintree_sample, charge, intent, stripe_event, stripe_signature

pytestmark = pytest.mark.django_db(transaction=True)


def call(method: str, path: str, body: bytes = b"", content_type: str = "application/json", **headers: str):
    """Call fintech.wsgi.application; (status code, headers, body)."""
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1",
        "CONTENT_TYPE": content_type,
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": io.StringIO(),
        "wsgi.url_scheme": "http",
        "wsgi.version": (1, 0),
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        **headers,
    }
    answer: dict = {}

    def start_response(status, response_headers, exc_info=None):
        answer["status"], answer["headers"] = int(status.split()[0]), dict(response_headers)

    chunks = application(environ, start_response)
    try:
        content = b"".join(chunks)
    finally:
        if hasattr(chunks, "close"):
            chunks.close()
    return answer["status"], answer["headers"], content


def post_stripe(event: dict, **headers: str):
    body = json.dumps(event)
    headers.setdefault("HTTP_STRIPE_SIGNATURE", stripe_signature(body))
    return call("POST", "/webhooks/stripe/", body.encode(), **headers)


def test_webhooks_are_served_by_their_own_handler_and_pages_by_the_full_stack():
    def names(handler) -> set[str]:
        chain, found = handler._middleware_chain, set()
        while chain is not None:
            found.add(type(chain).__name__)
            chain = getattr(chain, "__wrapped__", None) or getattr(chain, "get_response", None)
        return found

    assert isinstance(webhook_application, WebhookWSGIHandler) and webhook_application is not default_application
    assert set(webhook_application.views) == {"/webhooks/stripe/", "/webhooks/braintree/"}
    # The views are those the full URLconf routes the same paths to.
    for path, view in webhook_application.views.items():
        assert resolve(path).func is view
    assert "SessionMiddleware" in names(default_application)


def test_an_unexpected_error_in_a_webhook_view_is_answered_as_django_answers_it(monkeypatch, caplog):
    from django.core.signals import request_finished

    from payments import webhooks

    def broken(request, provider):
        raise RuntimeError("boom")

    finished: list[object] = []

    def on_finished(sender, **kwargs):
        finished.append(sender)

    request_finished.connect(on_finished)
    monkeypatch.setattr(webhooks, "_receive", broken)
    try:
        status, headers, _ = post_stripe(stripe_event("payment_intent.succeeded", intent("pi_err", "succeeded")))
    finally:
        request_finished.disconnect(on_finished)
    assert status == 500 and headers["X-Content-Type-Options"] == "nosniff"
    errors = [record for record in caplog.records if record.name == "django.request" and record.levelname == "ERROR"]
    assert len(errors) == 1  # logged once
    assert len(finished) == 1  # the request's end is signalled: connections are tidied up
    assert WebhookEvent.objects.count() == 0


def test_a_view_that_answers_nothing_is_a_logged_500_not_a_crash(monkeypatch, caplog):
    from payments import webhooks

    monkeypatch.setattr(webhooks, "_receive", lambda request, provider: None)
    status, _, _ = post_stripe(stripe_event("payment_intent.succeeded", intent("pi_none", "succeeded")))
    assert status == 500
    assert any("returned NoneType, not a response" in str(record.exc_info) for record in caplog.records)


def test_a_delivery_is_stored_once_and_answered_as_through_the_full_stack():
    cache.delete(DRAIN_FLAG)
    event = stripe_event("payment_intent.succeeded", intent("pi_wsgi1", "succeeded"))
    status, headers, content = post_stripe(event, HTTP_COOKIE="sessionid=secret", HTTP_X_TRACE="abc")
    assert (status, json.loads(content)) == (200, {"received": True})
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Frame-Options"] == "DENY" and headers["X-Content-Type-Options"] == "nosniff"
    assert "Set-Cookie" not in headers  # no session machinery on this path

    status, _, content = post_stripe(event)
    assert (status, json.loads(content)) == (200, {"received": True, "duplicate": True})

    stored = WebhookEvent.objects.get()
    assert (stored.provider, stored.event_id, stored.status) == ("stripe", event["id"], "received")
    assert json.loads(stored.raw_body) == event and stored.source_ip == "127.0.0.1"
    assert "Cookie" not in stored.headers and stored.headers["X-Trace"] == "abc"
    # One drain queued for the burst; it applies the delivery.
    assert cache.get(DRAIN_FLAG) == 1
    assert webhook_drain() == 1
    assert Payment.objects.get().status == "succeeded"


def test_braintree_delivery_through_the_webhook_handler():
    form = braintree_sample("transaction_settled", "bt_wsgi1")
    body = urlencode(form).encode()
    status, _, content = call("POST", "/webhooks/braintree/", body, "application/x-www-form-urlencoded")
    assert (status, json.loads(content)) == (200, {"received": True})
    assert WebhookEvent.objects.get().object_id == "bt_wsgi1"


def test_refusals_store_nothing_and_are_audited_once():
    body = json.dumps(stripe_event("charge.succeeded", charge("pi_wsgi2")))
    for _ in range(3):
        status, _, content = call(
            "POST", "/webhooks/stripe/", body.encode(), HTTP_STRIPE_SIGNATURE=stripe_signature(body, secret="whsec_x")
        )
        assert status == 400 and json.loads(content) == {"error": "Stripe-Signature does not match"}
    refusal = AuditEvent.objects.get(action="webhook.refused")
    assert refusal.details["reason"] == "Stripe-Signature does not match" and refusal.ip_address == "127.0.0.1"
    assert WebhookEvent.objects.count() == 0


def test_bad_requests_get_the_same_answers():
    for method in ("GET", "HEAD", "OPTIONS", "PUT"):
        status, headers, _ = call(method, "/webhooks/stripe/")
        assert (status, headers["Allow"]) == (405, "POST"), method
    assert call("POST", "/webhooks/nowhere/", b"{}")[0] == 404
    # A form parameter with a NUL is refused by the guard, before the view.
    status, headers, content = call(
        "POST", "/webhooks/braintree/", b"bt_signature=a%00b&bt_payload=x", "application/x-www-form-urlencoded"
    )
    assert status == 400 and b"NUL" in content
    assert headers["X-Content-Type-Options"] == "nosniff" and headers["X-Frame-Options"] == "DENY"
    # A Host outside ALLOWED_HOSTS is refused as on every other path.
    status, headers, _ = call("POST", "/webhooks/stripe/", b"{}", HTTP_HOST="evil.example")
    assert status == 400 and headers["X-Content-Type-Options"] == "nosniff"
    assert WebhookEvent.objects.count() == 0


def test_other_paths_keep_the_full_middleware_stack():
    status, headers, _ = call("GET", "/accounts/login/")
    assert status == 200
    assert "Content-Security-Policy" in headers


def test_only_the_gateway_endpoints_skip_the_full_stack():
    # /webhooks/ itself resolves to the catch-all section page, a staff page: served, like any
    # path but the two endpoints, with session, authentication, MFA and CSP middleware.
    for path in ("/webhooks/", "/webhooks/nowhere/"):
        _, headers, _ = call("GET", path)
        assert "Content-Security-Policy" in headers, path
    _, headers, _ = call("GET", "/webhooks/stripe/")
    assert "Content-Security-Policy" not in headers


def test_with_redis_down_a_delivery_is_stored_and_answered_without_waiting_on_retries(monkeypatch):
    cache.delete(DRAIN_FLAG)
    connects: list[int] = []
    original_connect = redis.connection.Connection._connect

    def counting_connect(self):
        connects.append(self.port)
        return original_connect(self)

    monkeypatch.setattr(redis.connection.Connection, "_connect", counting_connect)
    monkeypatch.setattr(inbox, "_drain_flag_client", None)
    # A port nothing listens on: every connection attempt is refused.
    monkeypatch.setitem(settings.CACHES["default"], "LOCATION", "redis://127.0.0.1:1/0")

    status, _, content = post_stripe(stripe_event("payment_intent.succeeded", intent("pi_noredis", "succeeded")))
    assert (status, json.loads(content)) == (200, {"received": True})
    assert WebhookEvent.objects.get().status == "received"  # stored for the sweep
    # No retry loop holds the answer while Redis is unreachable.
    assert 1 <= connects.count(1) <= 2


def test_the_drain_flag_client_reconnects_after_its_connection_is_dropped():
    flag_client = inbox._drain_flag_redis()
    cache.delete(DRAIN_FLAG)
    assert post_stripe(stripe_event("payment_intent.created", intent("pi_drop1", "requires_payment_method")))[0] == 200
    assert cache.get(DRAIN_FLAG) == 1
    # As after a Redis restart: the server closes the kept connection.
    connection_id = flag_client.client_id()
    redis.Redis.from_url(settings.CACHES["default"]["LOCATION"]).client_kill_filter(_id=connection_id)
    cache.delete(DRAIN_FLAG)
    assert post_stripe(stripe_event("payment_intent.created", intent("pi_drop2", "requires_payment_method")))[0] == 200
    assert cache.get(DRAIN_FLAG) == 1
    assert WebhookEvent.objects.count() == 2


def test_a_delivery_on_a_connection_broken_since_the_last_request_is_stored(monkeypatch):
    """The endpoint skips Django's per-request health check; a kept connection that broke
    (database restart, idle timeout) is replaced and the delivery stored, not answered 500."""
    from payments import webhooks

    connection.close()
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 60)  # connections are kept between requests
    warnings: list[str] = []
    monkeypatch.setattr(webhooks.logger, "warning", lambda message, *args: warnings.append(message % args))
    assert post_stripe(stripe_event("payment_intent.created", intent("pi_conn1", "pending")))[0] == 200
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        broken_pid = cursor.fetchone()[0]
    with psycopg.connect(**_admin_params()) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [broken_pid])

    status, _, content = post_stripe(stripe_event("payment_intent.created", intent("pi_conn2", "pending")))
    # Without the retry on a new connection this is a 500: nothing checks the kept connection first.
    assert (status, json.loads(content)) == (200, {"received": True})
    assert warnings == ["database connection lost before storing a webhook; storing it on a new connection"]
    assert set(WebhookEvent.objects.values_list("object_id", flat=True)) == {"pi_conn1", "pi_conn2"}
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        assert cursor.fetchone()[0] != broken_pid


def _admin_params() -> dict:
    settings_dict = connection.settings_dict
    return {
        "dbname": settings_dict["NAME"],
        "host": settings_dict["HOST"],
        "port": settings_dict["PORT"] or 5432,
        "user": settings_dict["USER"],
        "autocommit": True,
    }


def _sent_drains(monkeypatch) -> list:
    from payments.tasks import drain_webhooks

    sent: list = []
    monkeypatch.setattr(drain_webhooks, "apply_async", lambda args=(), kwargs=None, **options: sent.append(kwargs))
    return sent


def test_a_web_process_signals_the_drain_once_per_window(settings, monkeypatch):
    settings.WEBHOOK_DRAIN_SIGNAL_WINDOW_MS = 60_000
    monkeypatch.setattr(inbox, "_signalled_at", float("-inf"))
    sent = _sent_drains(monkeypatch)
    cache.delete(DRAIN_FLAG)
    assert post_stripe(stripe_event("payment_intent.created", intent("pi_win1", "requires_payment_method")))[0] == 200
    assert cache.get(DRAIN_FLAG) == 1 and len(sent) == 1
    cache.delete(DRAIN_FLAG)  # a drain cleared it
    # Within the window: stored and answered, no round trip to Redis, no second drain queued.
    assert post_stripe(stripe_event("payment_intent.created", intent("pi_win2", "requires_payment_method")))[0] == 200
    assert cache.get(DRAIN_FLAG) is None and len(sent) == 1
    # Once the window is over, the next delivery signals again.
    monkeypatch.setattr(inbox, "_signalled_at", inbox._signalled_at - 60)
    assert post_stripe(stripe_event("payment_intent.created", intent("pi_win3", "requires_payment_method")))[0] == 200
    assert cache.get(DRAIN_FLAG) == 1 and len(sent) == 2
    assert WebhookEvent.objects.count() == 3


class FakeClock:
    """``time`` for payments.inbox: ``monotonic`` moves only when ``sleep`` is called."""

    def __init__(self, on_sleep=None) -> None:
        self.now, self.sleeps, self.on_sleep = 0.0, [], on_sleep

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self.on_sleep:
            self.on_sleep(len(self.sleeps))
        self.now += seconds


def test_a_drain_looks_again_after_the_window_for_a_delivery_that_sent_no_signal(settings, monkeypatch):
    """The race the window opens: a delivery stored after the drain's last look, by a process that
    set the flag just before the drain cleared it, sends no signal; the drain's closing look, a
    window after the clear, applies it."""
    settings.WEBHOOK_DRAIN_SIGNAL_WINDOW_MS = 250

    def deliver_during_the_first_wait(count: int) -> None:
        if count == 1:
            # The drain applied the first delivery and found nothing more: the second arrives now.
            assert post_stripe(stripe_event("payment_intent.succeeded", intent("pi_settle2", "succeeded")))[0] == 200
            assert cache.get(DRAIN_FLAG) is None  # within the window: no signal

    clock = FakeClock(deliver_during_the_first_wait)
    monkeypatch.setattr(inbox, "time", clock)
    monkeypatch.setattr(inbox, "_signalled_at", float("-inf"))
    _sent_drains(monkeypatch)
    cache.delete(DRAIN_FLAG)
    assert post_stripe(stripe_event("payment_intent.succeeded", intent("pi_settle1", "succeeded")))[0] == 200
    assert cache.get(DRAIN_FLAG) == 1
    looks: list[float] = []
    drain_batch = inbox._drain_batch
    monkeypatch.setattr(inbox, "_drain_batch", lambda *a, **k: looks.append(clock.now) or drain_batch(*a, **k))

    assert webhook_drain() == 2
    # Applies the first; finds nothing; a window after its clear, applies the second; clears
    # again, finds nothing; a window after that clear, finds nothing and ends.
    assert looks == [0.0, 0.0, 0.25, 0.25, 0.5] and clock.sleeps == [0.25, 0.25]
    assert list(Payment.objects.values_list("status", flat=True)) == ["succeeded", "succeeded"]
    assert not WebhookEvent.objects.filter(status="received").exists()


def test_without_a_window_a_drain_ends_at_its_first_empty_look(settings, monkeypatch):
    settings.WEBHOOK_DRAIN_SIGNAL_WINDOW_MS = 0
    clock = FakeClock()
    monkeypatch.setattr(inbox, "time", clock)
    assert post_stripe(stripe_event("payment_intent.succeeded", intent("pi_nowin", "succeeded")))[0] == 200
    assert webhook_drain() == 1 and clock.sleeps == []


def test_a_failed_signal_opens_no_window(settings, monkeypatch):
    settings.WEBHOOK_DRAIN_SIGNAL_WINDOW_MS = 60_000
    monkeypatch.setattr(inbox, "_signalled_at", float("-inf"))
    sent = _sent_drains(monkeypatch)
    cache.delete(DRAIN_FLAG)
    location = settings.CACHES["default"]["LOCATION"]
    monkeypatch.setattr(inbox, "_drain_flag_client", None)
    monkeypatch.setitem(settings.CACHES["default"], "LOCATION", "redis://127.0.0.1:1/0")
    assert post_stripe(stripe_event("payment_intent.created", intent("pi_fail1", "requires_payment_method")))[0] == 200
    # Redis is back: the next delivery, well within the window, still signals.
    monkeypatch.setitem(settings.CACHES["default"], "LOCATION", location)
    monkeypatch.setattr(inbox, "_drain_flag_client", None)
    assert post_stripe(stripe_event("payment_intent.created", intent("pi_fail2", "requires_payment_method")))[0] == 200
    assert cache.get(DRAIN_FLAG) == 1 and len(sent) == 1


def test_a_drain_task_that_reached_its_limit_queues_the_next(monkeypatch):
    from payments import tasks

    sent = _sent_drains(monkeypatch)
    monkeypatch.setattr(tasks, "DRAIN_MAX_EVENTS", 2)
    for n in range(3):
        event = stripe_event("payment_intent.created", intent(f"pi_lim{n}", "requires_payment_method"))
        assert post_stripe(event)[0] == 200
    sent.clear()
    tasks.drain_webhooks.run(fan_out=False)
    assert WebhookEvent.objects.filter(status="received").count() == 1
    assert sent == [{"fan_out": False}]
    tasks.drain_webhooks.run(fan_out=False)
    assert not WebhookEvent.objects.filter(status="received").exists() and sent == [{"fan_out": False}]


def test_concurrent_deliveries_with_a_signal_window_are_all_applied_without_the_sweep(settings, monkeypatch):
    """Rounds of web threads delivering in bursts and pauses while a worker of two processes runs
    every drain they queue, side by side: whichever deliveries skipped signalling, no event is
    left for the sweep once the worker has nothing more to run."""
    import queue
    import random
    import threading
    import time

    from django.db import connections

    from payments.tasks import drain_webhooks

    settings.WEBHOOK_DRAIN_SIGNAL_WINDOW_MS = 250
    monkeypatch.setattr(inbox, "_signalled_at", float("-inf"))
    cache.delete(DRAIN_FLAG)
    queued: queue.Queue = queue.Queue()
    monkeypatch.setattr(drain_webhooks, "apply_async", lambda args=(), kwargs=None, **options: queued.put(kwargs))
    running = threading.Event()
    running.set()
    failures: list[BaseException] = []

    def worker() -> None:
        # As the task does: drains the endpoints queue fan out, those they queue do not.
        while running.is_set():
            try:
                kwargs = queued.get(timeout=0.02)
            except queue.Empty:
                continue
            try:
                webhook_drain(**{"fan_out": True, **(kwargs or {})})
            except BaseException as exc:  # reported by the test thread
                failures.append(exc)
            finally:
                queued.task_done()
        connections.close_all()

    def drains_done(timeout: float = 60) -> bool:
        deadline = time.monotonic() + timeout
        while queued.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.02)
        return not queued.unfinished_tasks

    def web(round_: int, thread: int) -> None:
        pace = random.Random(round_ * 10 + thread)  # noqa: S311 - pauses, not secrets
        try:
            for n in range(8):
                event = stripe_event("payment_intent.succeeded", intent(f"pi_cw{round_}x{thread}x{n}", "succeeded"))
                assert post_stripe(event)[0] == 200
                time.sleep(pace.choice([0, 0.02, 0.05, 0.08]))
        except BaseException as exc:
            failures.append(exc)
        finally:
            connections.close_all()

    settings.WEBHOOK_DRAIN_PARALLEL = 2
    drainers = [threading.Thread(target=worker) for _ in range(2)]  # two worker processes
    for drainer in drainers:
        drainer.start()
    try:
        for round_ in range(3):
            senders = [threading.Thread(target=web, args=(round_, thread)) for thread in range(4)]
            for sender in senders:
                sender.start()
            for sender in senders:
                sender.join()
            assert drains_done()  # every queued drain has run to its end
            assert not failures
            assert WebhookEvent.objects.count() == 32 * (round_ + 1)
            assert not WebhookEvent.objects.exclude(status="processed").exists(), f"round {round_}"
    finally:
        running.clear()
        for drainer in drainers:
            drainer.join(60)
    assert Payment.objects.filter(status="succeeded").count() == 96
