"""The management commands, the traffic generator and the run command's sandbox processes."""

import json
import socket
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from fintech import runner
from sandbox.server import decode_form
from sandbox.traffic import SandboxControl, TrafficGenerator, TrafficOptions


def test_the_traffic_generator_makes_a_realistic_mix_through_the_sdks(sandbox, stripe_client, braintree_gateway):
    generator = TrafficGenerator(
        stripe_client=stripe_client,
        braintree_gateway=braintree_gateway,
        control=SandboxControl(sandbox.url),
        options=TrafficOptions(rate=60, duration=3, seed=3, payout_every=1, progress=False),
        log=lambda line: None,
    )

    summary = generator.run()

    counts = summary.counts
    assert counts["errors"] == 0
    assert counts["stripe.payments"] > 0 and counts["braintree.payments"] > 0
    assert counts["stripe.succeeded"] > 0 and counts["braintree.submitted_for_settlement"] > 0
    assert counts["stripe.declined"] + counts["braintree.declined"] > 0
    assert counts["payouts"] > 0
    intents = stripe_client.v1.payment_intents.list(params={"limit": 100}).data
    assert all(set(intent.metadata.to_dict()) >= {"order_id", "customer_email"} for intent in intents)
    assert any("payments in" in line for line in summary.lines())


def test_traffic_refuses_real_gateways(settings):
    settings.STRIPE_API_BASE = "https://api.stripe.com"
    with pytest.raises(CommandError, match="only talks to the local stand-in"):
        call_command("sandbox_traffic", "--duration", "1")


def test_traffic_explains_an_unreachable_stand_in(settings):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.STRIPE_API_BASE = settings.BRAINTREE_ENVIRONMENT = f"http://127.0.0.1:{port}"
    with pytest.raises(CommandError, match=r"not reachable at http://127\.0\.0\.1:\d+.*sandbox_serve"):
        call_command("sandbox_traffic", "--duration", "1")


def test_traffic_waits_for_the_app_and_gives_up_when_told(settings, sandbox):
    settings.STRIPE_API_BASE = settings.BRAINTREE_ENVIRONMENT = sandbox.url
    with pytest.raises(CommandError, match="did not answer 200"):
        call_command(
            "sandbox_traffic", "--duration", "1", "--wait", "1", "--start-after", f"{sandbox.url}/_sandbox/nothing"
        )


def test_traffic_command_runs_and_summarises(settings, sandbox):
    settings.STRIPE_API_BASE = settings.BRAINTREE_ENVIRONMENT = sandbox.url
    out = StringIO()
    call_command(
        "sandbox_traffic",
        *("--rate", "20", "--duration", "1", "--seed", "5", "--no-progress"),
        *("--start-after", f"{sandbox.url}/_sandbox/health"),
        stdout=out,
    )
    assert "Sandbox traffic summary:" in out.getvalue()
    assert "stripe.payments" in out.getvalue()


def test_serve_explains_a_taken_port(settings):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(CommandError, match=f"Port {port} on 127.0.0.1 is not available"):
            call_command("sandbox_serve", "--port", str(port))


def test_serve_needs_the_shared_credentials(settings):
    settings.STRIPE_WEBHOOK_SECRETS = []
    with pytest.raises(CommandError, match="STRIPE_WEBHOOK_SECRETS"):
        call_command("sandbox_serve", "--port", "0")


def test_sandbox_info_says_whether_the_gateways_are_local(settings):
    settings.STRIPE_API_BASE = "http://127.0.0.1:8765"
    out = StringIO()
    call_command("sandbox_info", stdout=out)
    assert json.loads(out.getvalue())["stand_in"] is True
    settings.STRIPE_API_BASE = "https://api.stripe.com"
    out = StringIO()
    call_command("sandbox_info", stdout=out)
    assert json.loads(out.getvalue())["stand_in"] is False


def test_stripe_form_decoding():
    decoded = decode_form("amount=5&metadata[order_id]=7&metadata[0]=x&expand[0]=a&expand[1]=b&pmt[]=card&pmt[]=sepa")
    assert decoded == {
        "amount": "5",
        "metadata": {"order_id": "7", "0": "x"},
        "expand": ["a", "b"],
        "pmt": ["card", "sepa"],
    }


# ------------------------------------------------------------------ the run command's plan


@pytest.fixture
def local_gateways(monkeypatch):
    def plan(port: int, stand_in: bool = True):
        monkeypatch.setattr(runner, "sandbox_settings", lambda env: {"stand_in": stand_in, "port": port})

    return plan


def test_the_run_command_adds_the_stand_in_and_traffic_for_local_gateways(local_gateways):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    local_gateways(free)
    env: dict[str, str] = {}

    processes, port = runner.sandbox_processes(env, "0.0.0.0", 8123, traffic=True)  # noqa: S104

    assert port == free
    assert processes["sandbox"][-1] == "sandbox_serve"
    traffic = processes["traffic"]
    start = traffic.index("sandbox_traffic")
    assert traffic[start : start + 5] == ["sandbox_traffic", "--rate", "2", "--duration", "0"]
    assert traffic[traffic.index("--start-after") + 1] == "http://127.0.0.1:8123/healthz"
    assert env["SANDBOX_WEBHOOK_TARGET"] == "http://127.0.0.1:8123"


def test_the_run_command_leaves_real_gateways_alone(local_gateways):
    local_gateways(8765, stand_in=False)
    assert runner.sandbox_processes({}, "127.0.0.1", 8000, traffic=True) == ({}, None)


def test_a_taken_sandbox_port_moves_unless_pinned(local_gateways):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        local_gateways(busy)
        env: dict[str, str] = {}
        processes, port = runner.sandbox_processes(env, "127.0.0.1", 8000, traffic=False)
        assert port != busy and env["SANDBOX_PORT"] == str(port)
        assert "traffic" not in processes

        with pytest.raises(runner.RunnerError, match=f"SANDBOX_PORT={busy + 1}"):
            runner.sandbox_processes({"SANDBOX_PORT": str(busy)}, "127.0.0.1", 8000, traffic=False)
