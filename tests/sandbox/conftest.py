"""A stand-in on a free port, a tiny webhook receiver standing in for the app, and SDK clients."""

import json
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.conf import settings

from sandbox.delivery import SandboxConfig
from sandbox.sdk import braintree_gateway as make_braintree_gateway
from sandbox.sdk import stripe_client as make_stripe_client
from sandbox.server import SandboxApp, SandboxCredentials, SandboxServer

WAIT_SECONDS = 20


def wait_for(predicate: Callable[[], object], *, what: str, timeout: float = WAIT_SECONDS):
    """Poll until ``predicate()`` is truthy; the deadline only bounds a broken run, it is not asserted."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)


class Receiver:
    """Records webhook POSTs; answers ``fail_first`` of them with 500, as a struggling app would."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.fail_first = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    failing = receiver.fail_first > 0
                    receiver.fail_first -= 1 if failing else 0
                    receiver.requests.append(
                        {
                            "path": self.path,
                            "headers": dict(self.headers),
                            "body": body,
                            "answered": 500 if failing else 200,
                        }
                    )
                self.send_response(500 if failing else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def stripe_events(self, *, accepted_only: bool = True) -> list[dict]:
        with self.lock:
            return [
                json.loads(request["body"])
                for request in self.requests
                if request["path"] == "/webhooks/stripe/" and (request["answered"] == 200 or not accepted_only)
            ]

    def stripe_types(self, object_id: str | None = None) -> list[str]:
        return [
            event["type"]
            for event in self.stripe_events()
            if object_id is None or event["data"]["object"]["id"] == object_id
        ]

    def braintree_fields(self) -> list[dict[str, str]]:
        with self.lock:
            return [
                {key: values[0] for key, values in urllib.parse.parse_qs(request["body"].decode()).items()}
                for request in self.requests
                if request["path"] == "/webhooks/braintree/" and request["answered"] == 200
            ]

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.stop()


@pytest.fixture
def credentials() -> SandboxCredentials:
    return SandboxCredentials.from_settings(settings)


@pytest.fixture
def sandbox(receiver, credentials):
    """The stand-in, its lifecycle steps quick so settlement and disputes arrive within a test."""
    config = SandboxConfig(webhook_target=receiver.url, lifecycle_delay_ms=100, retry_base_ms=50)
    server = SandboxServer(SandboxApp(credentials, config)).start()
    yield server
    server.stop()


@pytest.fixture
def stripe_client(sandbox, credentials):
    return make_stripe_client(credentials.stripe_api_key, sandbox.url, max_network_retries=0)


@pytest.fixture
def braintree_gateway(sandbox, credentials):
    return make_braintree_gateway(
        sandbox.url,
        merchant_id=credentials.braintree_merchant_id,
        public_key=credentials.braintree_public_key,
        private_key=credentials.braintree_private_key,
    )


class Control:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def call(self, method: str, path: str, payload: dict | None = None, *, content_type="application/json"):
        data = json.dumps(payload or {}).encode() if method == "POST" else None
        request = urllib.request.Request(  # noqa: S310
            f"{self.base_url}/_sandbox/{path}", data=data, method=method, headers={"Content-Type": content_type}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (the test's own server)
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")

    def post(self, path: str, payload: dict | None = None) -> dict:
        status, body = self.call("POST", path, payload)
        assert status == 200, body
        return body

    def deliveries(self, **query: str) -> list[dict]:
        status, body = self.call("GET", "deliveries?" + urllib.parse.urlencode(query))
        assert status == 200
        return body["deliveries"]


@pytest.fixture
def control(sandbox) -> Control:
    return Control(sandbox.url)
