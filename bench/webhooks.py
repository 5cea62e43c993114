"""Webhook ingestion and processing throughput, on a scratch database.

1. Ingestion: gunicorn (production settings, gthread workers) serves POST /webhooks/stripe/;
   pre-signed deliveries of a realistic mix (payment lifecycles, fees, refunds, 5% duplicates)
   arrive over keep-alive connections. The client is wrk (``apt-get install wrk``; C, an event
   loop, so most of the two cores stay with the server) for ``--duration`` seconds, or, with
   ``--client python`` or without wrk, Python client processes sending every delivery once.
   Prints deliveries answered per second, new events stored per second, p50/p95/p99 latency and
   the CPU per delivery of gunicorn's workers and of PostgreSQL (from /proc).
2. Processing: one Celery worker (``--worker-processes``, default 2 as in the run command; 1 is
   the solo pool) runs the drain task the endpoint queued, fanning out over the backlog; prints
   events applied to payments and ledger per second.
3. In-process (``--in-process``, instead of 1 and 2): the same deliveries stored directly, then
   ``webhook_drain`` in this process; prints events per second, queries per event and the CPU
   of this process and of its PostgreSQL backend per event.

    .venv/bin/python bench/webhooks.py [--deliveries 30000] [--duration 10] [--connections 16]
        [--web-workers 2] [--web-threads 4] [--worker-class gthread|sync] [--worker-processes 2] [--client wrk|python]
    .venv/bin/python bench/webhooks.py --in-process [--deliveries 10000]

Needs PostgreSQL and Redis (BENCH_DATABASE_SERVER, default postgres://postgres@127.0.0.1:5432;
BENCH_REDIS_URL, default redis://127.0.0.1:6379/15, flushed first).
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import hmac
import http.client
import json
import multiprocessing
import os
import platform
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg

BASE_DIR = Path(__file__).resolve().parent.parent
PYTHON = str(BASE_DIR / ".venv" / "bin" / "python")
SECRET = "whsec_" + secrets.token_hex(24)
WRK = shutil.which("wrk") or ""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def signed(event: dict) -> tuple[bytes, str]:
    body = json.dumps(event)
    timestamp = int(time.time())
    digest = hmac.new(SECRET.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256).hexdigest()
    return body.encode(), f"t={timestamp},v1={digest}"


def event_mix(count: int, run: str) -> list[dict]:
    """Lifecycles of payments: created, processing, charge with fee, succeeded; some refunds; 5% duplicates."""
    events: list[dict] = []
    now = int(time.time())
    n = 0
    while len(events) < count:
        pi = f"pi_{run}{n}"
        amount = 500 + (n * 37) % 20000
        base = {"id": pi, "object": "payment_intent", "amount": amount, "currency": "usd", "metadata": {}}
        charge = {
            "id": f"ch_{run}{n}",
            "object": "charge",
            "amount": amount,
            "amount_captured": amount,
            "currency": "usd",
            "captured": True,
            "payment_intent": pi,
            "balance_transaction": {"id": f"txn_{run}{n}", "fee": amount * 29 // 1000 + 30},
            "billing_details": {"email": f"payer{n}@example.com"},
            "payment_method_details": {"card": {"brand": "visa", "last4": "4242"}},
        }
        lifecycle = [
            ("payment_intent.created", {**base, "status": "requires_payment_method"}),
            ("payment_intent.processing", {**base, "status": "processing"}),
            ("charge.succeeded", charge),
            ("payment_intent.succeeded", {**base, "status": "succeeded", "amount_received": amount}),
        ]
        if n % 5 == 0:
            refund = {
                "id": f"re_{run}{n}",
                "object": "refund",
                "amount": amount // 2,
                "currency": "usd",
                "payment_intent": pi,
                "charge": charge["id"],
                "status": "succeeded",
            }
            lifecycle.append(("charge.refund.updated", refund))
        for index, (event_type, obj) in enumerate(lifecycle):
            events.append(
                {
                    "id": f"evt_{run}{n}x{index}",
                    "object": "event",
                    "type": event_type,
                    "created": now + index,
                    "data": {"object": obj},
                }
            )
        n += 1
    events = events[:count]
    events += events[: count // 20]  # duplicate deliveries
    return events


def client_process(port: int, payloads: list[tuple[bytes, str]], threads: int, results) -> None:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    chunks = [payloads[i::threads] for i in range(threads)]

    def run(chunk: list[tuple[bytes, str]]) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        local: list[float] = []
        local_statuses: dict[int, int] = {}
        for body, signature in chunk:
            started = time.perf_counter()
            try:
                connection.request(
                    "POST",
                    "/webhooks/stripe/",
                    body=body,
                    headers={"Content-Type": "application/json", "Stripe-Signature": signature, "Host": "127.0.0.1"},
                )
                response = connection.getresponse()
                response.read()
                status = response.status
                if response.getheader("Connection", "").lower() == "close":
                    connection.close()
            except (ConnectionError, http.client.HTTPException, OSError):
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                status = 0
            local.append(time.perf_counter() - started)
            local_statuses[status] = local_statuses.get(status, 0) + 1
        with lock:
            latencies.extend(local)
            for key, value in local_statuses.items():
                statuses[key] = statuses.get(key, 0) + value

    workers = [threading.Thread(target=run, args=(chunk,)) for chunk in chunks]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    results.put((latencies, statuses))


# wrk's script: each wrk thread sends its share of the pre-signed deliveries in order, one per
# request, wrapping around (duplicates) if the duration outlasts them; done() prints the figures.
WRK_SCRIPT = r"""
local threads = 0
function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end
function init(args)
  reqs = {}
  local n = 0
  for line in io.lines(args[1]) do
    if n % tonumber(args[2]) == id then
      local signature, body = line:match("^([^\t]*)\t(.*)$")
      reqs[#reqs + 1] = wrk.format("POST", "/webhooks/stripe/",
        {["Content-Type"] = "application/json", ["Stripe-Signature"] = signature}, body)
    end
    n = n + 1
  end
  i = 0
end
function request()
  i = i % #reqs + 1
  return reqs[i]
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK %d %d %d %d %d %d\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(95), latency:percentile(99),
    e.status + e.connect + e.read + e.write + e.timeout))
end
"""


def wrk_ingest(port: int, payloads: list[tuple[bytes, str]], args: argparse.Namespace) -> dict:
    """Send the deliveries with wrk (C, event loop: little of the two cores goes to the client)."""
    with tempfile.TemporaryDirectory() as workdir:
        data, script = Path(workdir) / "deliveries.tsv", Path(workdir) / "deliveries.lua"
        data.write_text("".join(f"{signature}\t{body.decode()}\n" for body, signature in payloads))
        script.write_text(WRK_SCRIPT)
        output = subprocess.run(  # noqa: S603
            [
                WRK,
                "-t",
                str(args.wrk_threads),
                "-c",
                str(args.connections),
                "-d",
                f"{args.duration}s",
                "--timeout",
                "5s",
                "-s",
                str(script),
                f"http://127.0.0.1:{port}",
                "--",
                str(data),
                str(args.wrk_threads),
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    line = next(line for line in output.splitlines() if line.startswith("WRK "))
    requests, duration_us, p50, p95, p99, errors = (int(value) for value in line.split()[1:])
    return {
        "requests": requests,
        "elapsed": duration_us / 1e6,
        "p50": p50 / 1e6,
        "p95": p95 / 1e6,
        "p99": p99 / 1e6,
        "errors": errors,
    }


def wait_for(port: int, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("gunicorn did not start")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def python_ingest(port: int, payloads: list[tuple[bytes, str]], args: argparse.Namespace, queue) -> dict:
    """Send the deliveries from Python client processes (no extra tool; the client costs more CPU)."""
    shares = [payloads[i :: args.clients] for i in range(args.clients)]
    started = time.perf_counter()
    clients = [
        multiprocessing.Process(target=client_process, args=(port, share, args.threads, queue)) for share in shares
    ]
    for client in clients:
        client.start()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    for _ in clients:
        chunk, chunk_statuses = queue.get()
        latencies.extend(chunk)
        for key, value in chunk_statuses.items():
            statuses[key] = statuses.get(key, 0) + value
    for client in clients:
        client.join()
    return {
        "requests": len(payloads),
        "elapsed": time.perf_counter() - started,
        "p50": statistics.median(latencies),
        "p95": percentile(latencies, 0.95),
        "p99": percentile(latencies, 0.99),
        "errors": len(payloads) - statuses.get(200, 0),
    }


def _process_stat(pid: int | str) -> tuple[str, int, int, float] | None:
    """(name, parent pid, start time, CPU seconds) of a process on this machine, from /proc."""
    try:
        name, fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)
    except OSError:
        return None
    values = fields.split()
    seconds = (int(values[11]) + int(values[12])) / os.sysconf("SC_CLK_TCK")
    return name.split("(", 1)[1], int(values[1]), int(values[19]), seconds


def backend_cpu(pid: int) -> float:
    """CPU seconds of a local PostgreSQL backend; -inf when it is not on this machine."""
    stat = _process_stat(pid)
    return stat[3] if stat else float("-inf")


def processes_cpu() -> dict[tuple[int, int], tuple[str, int, float]]:
    """This machine's processes: (pid, start time) -> (name, parent pid, CPU seconds)."""
    processes = {}
    for directory in Path("/proc").glob("[0-9]*"):
        stat = _process_stat(directory.name)
        if stat:
            name, parent, started, seconds = stat
            processes[(int(directory.name), started)] = (name, parent, seconds)
    return processes


def cpu_spent(before: dict, after: dict, *, name: str = "", parent: int = 0) -> float:
    """CPU seconds spent between the two readings by the processes named so or with that parent.

    A process that ended in between is missed; one that started in between counts in full.
    """
    return sum(
        seconds - (before[key][2] if key in before else 0.0)
        for key, (process, ppid, seconds) in after.items()
        if (name and process == name) or (parent and ppid == parent)
    )


def in_process(env: dict[str, str], events: list[dict]) -> None:
    """Store the deliveries without HTTP, then drain them here, counting queries."""
    from datetime import UTC, datetime

    os.environ.pop("DJANGO_SETTINGS_MODULE", None)
    os.environ.update(env)
    import django

    from fintech import configure_settings_module

    configure_settings_module()
    django.setup()
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from payments.inbox import webhook_drain
    from payments.webhooks import VerifiedDelivery, webhook_store

    stored = 0
    for event in events:
        delivery = VerifiedDelivery(
            provider="stripe",
            event_id=event["id"],
            event_type=event["type"],
            object_id=event["data"]["object"]["id"],
            occurred_at=datetime.fromtimestamp(event["created"], tz=UTC),
            payload=event,
        )
        stored += (
            webhook_store(delivery=delivery, raw_body=json.dumps(event), headers={}, source_ip="127.0.0.1") is not None
        )
    connection.queries_log = collections.deque(maxlen=None)
    with CaptureQueriesContext(connection) as queries:
        counting_started = time.perf_counter()
        counted = webhook_drain(max_events=min(stored, 1000))
        counting_elapsed = time.perf_counter() - counting_started
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    server_cpu_started = backend_cpu(backend)
    started, cpu_started = time.perf_counter(), time.process_time()
    applied = webhook_drain()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    server_cpu = backend_cpu(backend) - server_cpu_started
    with connection.cursor() as cursor:
        cursor.execute("SELECT status, count(*) FROM payments_webhookevent GROUP BY status ORDER BY status")
        statuses = dict(cursor.fetchall())
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(
        f"in-process: first {counted} events with queries captured: {len(queries.captured_queries) / counted:.1f} "
        f"queries/event ({counting_elapsed / counted * 1000:.2f} ms/event while capturing)"
    )
    print(
        f"  then {applied} events in {elapsed:.1f} s = {applied / elapsed:,.0f} events/s, "
        f"{elapsed / applied * 1000:.2f} ms/event ({cpu / applied * 1000:.2f} ms of it CPU in this process); "
        f"statuses {statuses}"
    )
    if server_cpu >= 0:
        print(f"  PostgreSQL backend CPU: {server_cpu / applied * 1000:.2f} ms/event")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deliveries", type=int, default=20000)
    parser.add_argument("--client", choices=["wrk", "python"], default="wrk" if WRK else "python")
    parser.add_argument("--duration", type=int, default=10, help="wrk: seconds of sending")
    parser.add_argument("--connections", type=int, default=16, help="wrk: keep-alive connections")
    parser.add_argument("--wrk-threads", type=int, default=1)
    parser.add_argument("--clients", type=int, default=2, help="python client: processes")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--web-threads", type=int, default=4)
    parser.add_argument("--worker-class", default="gthread", help="gunicorn worker class (gthread, sync)")
    parser.add_argument("--worker-processes", type=int, default=2, help="processes of the Celery worker (1: solo pool)")
    parser.add_argument("--in-process", action="store_true", help="store directly and drain in this process")
    args = parser.parse_args()

    server = os.environ.get("BENCH_DATABASE_SERVER", "postgres://postgres@127.0.0.1:5432")
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
    database = "bench_webhooks"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {database}")
    sys.path.insert(0, str(BASE_DIR))
    from fintech.core.crypto import generate_key_entry

    # Production settings: importing fintech above set DJANGO_SETTINGS_MODULE to development's
    # (DEBUG, which records every query), and a child would keep it.
    env = {
        **{key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"},
        "DJANGO_ENV": "production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DATABASE_URL": f"{server}/{database}",
        "REDIS_URL": redis_url,
        "FIELD_ENCRYPTION_KEYS": generate_key_entry("bench1"),
        "BLIND_INDEX_KEY": secrets.token_urlsafe(48),
        "AUDIT_ANCHOR_KEYS": generate_key_entry("anchor1"),
        "STRIPE_WEBHOOK_SECRETS": SECRET,
        "STRIPE_API_KEY": "sk_test_bench",
        "SECURE_SSL_REDIRECT": "false",
        "LOG_LEVEL": "WARNING",
        "WEBHOOK_DRAIN_PARALLEL": str(args.worker_processes),
    }
    manage = [PYTHON, str(BASE_DIR / "manage.py")]
    subprocess.run([*manage, "migrate", "--no-input", "-v", "0"], env=env, check=True, cwd=BASE_DIR)  # noqa: S603
    import redis

    redis.Redis.from_url(redis_url).flushdb()

    run = secrets.token_hex(3)
    if args.in_process:
        in_process(env, event_mix(args.deliveries, run))
        return
    payloads = [signed(event) for event in event_mix(args.deliveries, run)]
    port = free_port()
    web = subprocess.Popen(  # noqa: S603
        [
            str(BASE_DIR / ".venv" / "bin" / "gunicorn"),
            "fintech.wsgi",
            "--config",
            str(BASE_DIR / "gunicorn.conf.py"),  # the web process's settings; the flags below override
            "-b",
            f"127.0.0.1:{port}",
            "-w",
            str(args.web_workers),
            "-k",
            args.worker_class,
            # gunicorn runs gthread whenever threads is above 1 (gunicorn.conf.py sets 4), whatever
            # the class asked for: one thread for any other class.
            "--threads",
            str(args.web_threads if args.worker_class == "gthread" else 1),
            "--log-level",
            "warning",
        ],
        env=env,
        cwd=BASE_DIR,
    )
    try:
        wait_for(port)
        # Warm-up: each worker loads the app and opens its connections.
        warm = [
            signed(
                {
                    "id": f"evt_warm{i}",
                    "object": "event",
                    "type": "ping",
                    "created": int(time.time()),
                    "data": {"object": {"id": "x"}},
                }
            )
            for i in range(200)
        ]
        queue: multiprocessing.Queue = multiprocessing.Queue()
        client_process(port, warm, 4, queue)
        queue.get()

        cpu_started = processes_cpu()
        if args.client == "wrk":
            measured = wrk_ingest(port, payloads, args)
        else:
            measured = python_ingest(port, payloads, args, queue)
        cpu_ended = processes_cpu()
    finally:
        web.send_signal(signal.SIGTERM)
        web.wait(30)

    with psycopg.connect(f"{server}/{database}") as db:
        stored = db.execute("SELECT count(*) FROM payments_webhookevent WHERE event_type <> 'ping'").fetchone()[0]
    elapsed = measured["elapsed"]
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    if args.client == "wrk":
        client = f"wrk, {args.wrk_threads} thread(s), {args.connections} connections, {args.duration} s"
    else:
        client = f"{args.clients}x{args.threads} Python client threads"
    layout = f"{args.web_workers} {args.worker_class} workers"
    if args.worker_class == "gthread":
        layout += f" x {args.web_threads} threads"
    print(f"ingestion: gunicorn {layout} (gunicorn.conf.py, Django production settings); client: {client}")
    print(
        f"  {measured['requests']} deliveries answered, {measured['errors']} not 2xx or failed; "
        f"{stored} new events stored"
    )
    print(
        f"  {measured['requests'] / elapsed:,.0f} deliveries/s ({stored / elapsed:,.0f} new events stored/s); "
        f"latency p50 {measured['p50'] * 1000:.1f} ms, p95 {measured['p95'] * 1000:.1f} ms, "
        f"p99 {measured['p99'] * 1000:.1f} ms"
    )
    # gunicorn's workers are its master's children; the master itself only supervises them.
    # PostgreSQL: every server process on this machine, whoever its client.
    web_cpu = cpu_spent(cpu_started, cpu_ended, parent=web.pid)
    database_cpu = cpu_spent(cpu_started, cpu_ended, name="postgres")
    print(
        f"  CPU per delivery: gunicorn workers {web_cpu / measured['requests'] * 1000:.2f} ms, "
        f"PostgreSQL server {database_cpu / measured['requests'] * 1000:.2f} ms"
    )
    if args.client == "wrk" and measured["requests"] > len(payloads):
        print(f"  (the {len(payloads)} deliveries ran out and were sent again: raise --deliveries)")

    # Processing: one worker process drains the queue the endpoint filled.
    worker = subprocess.Popen(  # noqa: S603
        [
            PYTHON,
            "-m",
            "celery",
            "-A",
            "fintech",
            "worker",
            *(["--pool", "solo"] if args.worker_processes == 1 else ["--pool", "prefork"]),
            "--concurrency",
            str(args.worker_processes),
            "--loglevel",
            "WARNING",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
        ],
        env=env,
        cwd=BASE_DIR,
    )
    try:
        with psycopg.connect(f"{server}/{database}", autocommit=True) as db:

            def done() -> int:
                return db.execute(
                    "SELECT count(*) FROM payments_webhookevent WHERE status <> 'received' AND event_type <> 'ping'"
                ).fetchone()[0]

            while done() == 0:
                time.sleep(0.05)
            first, started = done(), time.perf_counter()
            while (count := done()) < stored:
                if time.perf_counter() - started > 600:
                    break
                time.sleep(0.2)
            elapsed = time.perf_counter() - started
            failed = db.execute("SELECT count(*) FROM payments_webhookevent WHERE status = 'failed'").fetchone()[0]
            entries = db.execute("SELECT count(*) FROM payments_journalentry").fetchone()[0]
            unbalanced = db.execute(
                "SELECT count(*) FROM (SELECT currency FROM payments_posting GROUP BY currency"
                " HAVING sum(amount_minor) <> 0) t"
            ).fetchone()[0]
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
    pool = "solo pool" if args.worker_processes == 1 else f"{args.worker_processes} processes"
    print(
        f"processing: one worker ({pool}) applied {count - first} events in {elapsed:.1f} s = "
        f"{(count - first) / elapsed:,.0f} events/s; {failed} failed; {entries} journal entries; "
        f"ledger {'balanced' if not unbalanced else 'UNBALANCED'}"
    )


if __name__ == "__main__":
    main()
