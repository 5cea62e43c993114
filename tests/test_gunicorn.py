"""The web process as deployed: `gunicorn fintech.wsgi` run from the project directory, with the
settings of gunicorn.conf.py and production Django settings, on the test database.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from http.client import HTTPConnection
from pathlib import Path

import pytest
import redis

from fintech.core.crypto import generate_key_entry
from payments.models import WebhookEvent
from tests.payments.deliveries import intent, stripe_event, stripe_signature
from tests.utils import database_url, free_port, redis_database_url

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET = "whsec_" + secrets.token_hex(24)


@pytest.fixture
def web(transactional_db):
    """gunicorn on a free port, started as the operations guide says; yields the port."""
    redis_url = redis_database_url(12)
    redis.Redis.from_url(redis_url).flushdb()
    port = free_port()
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "PYTEST", "GUNICORN", "WEB_"))
    }
    env.update(
        DJANGO_ENV="production",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(64),
        DJANGO_ALLOWED_HOSTS="127.0.0.1",
        DATABASE_URL=database_url(),
        REDIS_URL=redis_url,
        FIELD_ENCRYPTION_KEYS=generate_key_entry("gunicorn1"),
        BLIND_INDEX_KEY=secrets.token_urlsafe(48),
        AUDIT_ANCHOR_KEYS=generate_key_entry("anchor1"),
        STRIPE_WEBHOOK_SECRETS=SECRET,
        STRIPE_API_KEY="sk_test_" + secrets.token_hex(8),
        SECURE_SSL_REDIRECT="false",
        WEB_CONCURRENCY="1",
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "fintech.wsgi", "--bind", f"127.0.0.1:{port}"],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.communicate()[0]
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "gunicorn did not listen within 60 s"
                time.sleep(0.2)
        yield port
    finally:
        server.terminate()
        try:
            output = server.communicate(timeout=60)[0]
        except subprocess.TimeoutExpired:
            server.kill()  # it must not outlive the test and hold the test database
            output = server.communicate()[0]
        redis.Redis.from_url(redis_url).flushdb()
    assert "Traceback" not in output, output


def _delivery(event: dict) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(event)
    return body.encode(), {"Content-Type": "application/json", "Stripe-Signature": stripe_signature(body, SECRET)}


def test_deliveries_are_answered_on_one_kept_alive_connection_and_stored(web):
    events = [stripe_event("payment_intent.processing", intent(f"pi_keep{n}", "processing")) for n in range(3)]
    connection = HTTPConnection("127.0.0.1", web, timeout=30)
    connection.connect()
    opened = connection.sock
    for event in events:
        body, headers = _delivery(event)
        connection.request("POST", "/webhooks/stripe/", body, headers)
        response = connection.getresponse()
        response.read()
        assert response.status == 200
        assert (response.getheader("Connection") or "").lower() != "close"
        # http.client drops a socket the server said it would close; this one is the first.
        assert connection.sock is opened
    connection.close()
    stored = set(WebhookEvent.objects.filter(provider="stripe").values_list("event_id", flat=True))
    assert stored == {event["id"] for event in events}


def _raw(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
        client.sendall(request)
        answer = b""
        while chunk := client.recv(65536):
            answer += chunk
    return answer


@pytest.mark.parametrize(
    ("framing", "status", "reason"),
    [
        pytest.param(
            b"Content-Length: {length}\r\nTransfer-Encoding: chunked\r\n",
            b"400 Bad Request",
            b"Invalid HTTP Header: &#x27;CONTENT-LENGTH&#x27;",
            id="length-and-chunked",
        ),
        pytest.param(
            b"Content-Length: {length}\r\nContent-Length: 5\r\n",
            b"400 Bad Request",
            b"Invalid HTTP Header: &#x27;CONTENT-LENGTH&#x27;",
            id="two-lengths",
        ),
        pytest.param(
            b"Content-Length: {length}\r\nX-Padding: " + b"a" * 9000 + b"\r\n",
            b"431 Request Header Fields Too Large",
            b"limit request headers fields size",
            id="header-too-long",
        ),
    ],
)
def test_a_request_the_server_cannot_frame_safely_is_refused_and_nothing_is_stored(web, framing, status, reason):
    """A signed delivery hidden in an ambiguous request (request smuggling) never reaches the inbox."""
    body, headers = _delivery(stripe_event("payment_intent.processing", intent("pi_smuggled", "processing")))
    head = (
        b"POST /webhooks/stripe/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        + f"Stripe-Signature: {headers['Stripe-Signature']}\r\n".encode()
        + framing.replace(b"{length}", str(len(body)).encode())
        + b"\r\n"
    )
    answer = _raw(web, head + body)
    head_lines = answer.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    assert head_lines[0] == b"HTTP/1.1 " + status
    assert b"Connection: close" in head_lines
    # gunicorn's refusal, once: not an answer from the view (JSON, with Django's headers) to a
    # body cut to another length or read as chunks.
    assert answer.count(b"HTTP/1.1 ") == 1
    assert reason in answer
    assert not WebhookEvent.objects.exists()
