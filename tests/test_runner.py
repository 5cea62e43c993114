"""The run command: clear errors that leave nothing running, and a whole stack that starts and stops."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import psycopg
import pytest
import redis
from django.conf import settings

from fintech import embedded
from tests.utils import database_url, free_port, redis_database_url

BASE_DIR = Path(__file__).resolve().parent.parent


def _runner(*arguments: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "fintech.runner", *arguments],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as a terminal would give it
    )


def _environment(**values: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "PYTEST"))}
    env.update(DJANGO_ENV="development", **values)
    return env


def test_a_taken_port_is_explained_before_anything_starts():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        runner = _runner("--port", str(port), env=_environment())
        output, _ = runner.communicate(timeout=120)
    assert runner.returncode == 1
    assert f"Port {port} on 127.0.0.1 is not available" in output
    assert f"PORT={port + 1} make run" in output
    assert "embedded" not in output and "started" not in output


def test_an_unreachable_database_is_explained_without_its_password():
    env = _environment(DATABASE_URL="postgres://ops:s3cret-pw@127.0.0.1:1/fintech")
    runner = _runner("--port", str(free_port()), env=env)
    output, _ = runner.communicate(timeout=120)
    assert runner.returncode == 1
    assert "Cannot connect to DATABASE_URL (postgres://ops:***@127.0.0.1:1/fintech)" in output
    assert "s3cret-pw" not in output
    assert "unset DATABASE_URL to use the embedded PostgreSQL" in output


def test_a_database_url_that_is_not_postgresql_is_refused():
    runner = _runner("--port", str(free_port()), env=_environment(DATABASE_URL="mysql://root@127.0.0.1/x"))
    output, _ = runner.communicate(timeout=120)
    assert runner.returncode == 1
    assert "DATABASE_URL must be a PostgreSQL URL" in output


def test_an_unreachable_redis_is_explained():
    env = _environment(DATABASE_URL=database_url("postgres"), REDIS_URL="redis://127.0.0.1:1/0")
    runner = _runner("--port", str(free_port()), env=env)
    output, _ = runner.communicate(timeout=120)
    assert runner.returncode == 1
    assert "Cannot reach REDIS_URL (redis://127.0.0.1:1/0)" in output


@pytest.fixture
def scratch_database():
    """A database of its own on the test server, for a whole stack to migrate and fill."""
    database = settings.DATABASES["default"]
    name = f"fintech_runner_{os.getpid()}"
    params = {"host": database["HOST"], "port": database["PORT"] or 5432, "user": database["USER"]}
    with psycopg.connect(dbname="postgres", autocommit=True, **params) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
        connection.execute(f'CREATE DATABASE "{name}"')
    yield database_url(name)
    with psycopg.connect(dbname="postgres", autocommit=True, **params) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def scratch_redis_url():
    """Redis database 13 of the test server, so the stack's queue is its own."""
    url = redis_database_url(13)
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


def _serve_until_healthy_then_ctrl_c(env: dict[str, str]) -> tuple[subprocess.Popen, str, list[psutil.Process]]:
    """Run the stack until /healthz is 200 and the login page answers, then send Ctrl-C."""
    port = free_port()
    runner = _runner("--port", str(port), env={**env, "WEB_CONCURRENCY": "1", "WORKER_CONCURRENCY": "1"})
    descendants: list[psutil.Process] = []
    try:
        health = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and runner.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
                    health = response.status
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.5)
        assert health == 200, "the stack never reported healthy (worker heartbeat from beat)"
        # Generous: at start-up the worker loads the demo's sanctions lists on the same cores.
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/accounts/login/", timeout=60) as response:
            assert response.status == 200
        descendants = psutil.Process(runner.pid).children(recursive=True)
        commands = " ".join(" ".join(process.cmdline()) for process in descendants)
        for program in ("gunicorn fintech.wsgi", "celery -A fintech worker", "celery -A fintech beat"):
            assert program in commands
        assert f"--config {BASE_DIR / 'gunicorn.conf.py'}" in commands  # threaded workers, keep-alive
    finally:
        os.killpg(runner.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        output, _ = runner.communicate(timeout=90)
    assert runner.returncode == 0, output
    assert "Demo logins" in output
    for name in ("web", "worker", "beat"):
        assert f"{name} started" in output
    assert [process for process in descendants if process.is_running() and process.status() != "zombie"] == []
    return runner, output, descendants


def test_the_whole_stack_on_configured_servers(scratch_database, scratch_redis_url, tmp_path):
    env = _environment(DATABASE_URL=scratch_database, REDIS_URL=scratch_redis_url, FINTECH_VAR_DIR=str(tmp_path))
    _, output, _ = _serve_until_healthy_then_ctrl_c(env)
    assert "embedded" not in output
    assert not (tmp_path / "postgres").exists()


def test_the_whole_stack_on_embedded_servers_which_it_stops(tmp_path):
    env = _environment(FINTECH_VAR_DIR=str(tmp_path))
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    _, output, _ = _serve_until_healthy_then_ctrl_c(env)
    assert "embedded PostgreSQL started" in output and "embedded Redis started" in output
    assert "embedded PostgreSQL stopped" in output and "embedded Redis stopped" in output
    assert embedded.postgres_pid(tmp_path / "postgres") is None
    assert embedded.redis_pid(tmp_path / "redis") is None
    # a second run reuses the data and the demo logins
    _, again, _ = _serve_until_healthy_then_ctrl_c(env)
    first_logins = output[output.index("Demo logins") :].splitlines()[1:4]
    assert again[again.index("Demo logins") :].splitlines()[1:4] == first_logins
    assert "No migrations to apply." in again
