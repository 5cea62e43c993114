"""The run command: services, migrations, demo data, then web + worker + beat in one terminal.

``./run`` (or ``make run``) creates the virtualenv and calls ``python -m fintech.runner``.
Steps: check the web port is free; use DATABASE_URL / REDIS_URL when set (checking they
answer), else start the embedded servers under var/; migrate; create demo data and print the
demo logins; then run gunicorn, a Celery worker and Celery beat with interleaved, prefixed
logs. When the payment gateways point at the local stand-in (the development default), it also
runs the stand-in (``sandbox_serve``) and, with demo data, a stream of sandbox payments
(``sandbox_traffic``) so the dashboard fills with live data. Ctrl-C (or any process exiting)
stops all of them, and the embedded servers this run started. Every failure is explained with
what to do, and leaves nothing running.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from fintech import embedded, load_dotenv

BASE_DIR = Path(__file__).resolve().parent.parent


class RunnerError(RuntimeError):
    """A problem the operator can fix; the message says how."""


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def check_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise RunnerError(
                f"Port {port} on {host} is not available ({error.strerror}). Another program is using it: "
                f"stop it, or run on another port, e.g. PORT={port + 1} make run"
            ) from None


def check_database(url: str) -> None:
    import environ
    import psycopg

    try:
        config = environ.Env.db_url_config(url)
    except Exception as error:
        raise RunnerError(f"DATABASE_URL is not a valid database URL: {error}") from None
    if config.get("ENGINE") != "django.db.backends.postgresql":
        raise RunnerError("DATABASE_URL must be a PostgreSQL URL (postgres://user:password@host:5432/name).")
    from urllib.parse import unquote

    try:
        psycopg.connect(
            host=unquote(str(config["HOST"])) or None,
            port=config.get("PORT") or None,
            user=config.get("USER") or None,
            password=config.get("PASSWORD") or None,
            dbname=config["NAME"],
            connect_timeout=5,
        ).close()
    except psycopg.Error as error:
        raise RunnerError(
            f"Cannot connect to DATABASE_URL ({_redact(url)}): {str(error).strip()}\n"
            "Check that the server runs and the URL is right, or unset DATABASE_URL to use the embedded PostgreSQL."
        ) from None


def check_redis(url: str) -> None:
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5)
        client.ping()
        client.close()
    except (redis.RedisError, ValueError) as error:
        raise RunnerError(
            f"Cannot reach REDIS_URL ({_redact(url)}): {error}\n"
            "Check that Redis runs and the URL is right, or unset REDIS_URL to use the embedded Redis."
        ) from None


def _manage(*arguments: str, env: dict[str, str]) -> None:
    command = [sys.executable, str(BASE_DIR / "manage.py"), *arguments]
    completed = subprocess.run(command, env=env, cwd=BASE_DIR, check=False)  # noqa: S603
    if completed.returncode != 0:
        raise RunnerError(f"`manage.py {' '.join(arguments)}` failed (exit code {completed.returncode}); see above.")


def process_commands(host: str, port: int) -> dict[str, list[str]]:
    python = sys.executable
    return {
        "web": [
            python, "-m", "gunicorn", "fintech.wsgi",
            "--config", str(BASE_DIR / "gunicorn.conf.py"),  # WEB_CONCURRENCY, WEB_THREADS
            "--bind", f"{host}:{port}",
            "--access-logfile", "-",
            "--graceful-timeout", "10",
        ],
        "worker": [
            python, "-m", "celery", "-A", "fintech", "worker",
            "--loglevel", "INFO",
            "--concurrency", os.environ.get("WORKER_CONCURRENCY", "2"),
            "--hostname", "worker@%h",
        ],
        "beat": [python, "-m", "celery", "-A", "fintech", "beat", "--loglevel", "INFO"],
    }  # fmt: skip


# The sandbox traffic generator's pace in the run command: payments per second, until stopped.
SANDBOX_TRAFFIC_RATE = "2"
# Variables that tie the gateways to a port; when one is set, the sandbox port is never moved.
SANDBOX_PINNING_VARIABLES = ("SANDBOX_PORT", "STRIPE_API_KEY", "STRIPE_API_BASE", "BRAINTREE_ENVIRONMENT")


def sandbox_settings(env: dict[str, str]) -> dict[str, object]:
    """What the settings say about the gateways: ``{"stand_in": bool, "port": int, ...}`` (manage.py sandbox_info)."""
    command = [sys.executable, str(BASE_DIR / "manage.py"), "sandbox_info"]
    completed = subprocess.run(command, env=env, cwd=BASE_DIR, check=False, capture_output=True, text=True)  # noqa: S603
    lines = completed.stdout.strip().splitlines()
    if completed.returncode != 0 or not lines:
        raise RunnerError(
            f"`manage.py sandbox_info` failed (exit code {completed.returncode}):\n{completed.stderr.strip()[-2000:]}"
        )
    return json.loads(lines[-1])


def _local_address(host: str) -> str:
    """The address other local processes use to reach a server bound to ``host``."""
    if host in {"", "0.0.0.0", "::"}:  # noqa: S104 (compared, not bound)
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def sandbox_processes(
    env: dict[str, str], host: str, port: int, *, traffic: bool
) -> tuple[dict[str, list[str]], int | None]:
    """The stand-in (and its traffic) when the gateways point at it; nothing for real gateways.

    Updates ``env`` so every process agrees: the stand-in's port (moved to a free one when the
    default is taken and nothing pins it) and where it delivers webhooks (this run's web port).
    """
    info = sandbox_settings(env)
    if not info.get("stand_in"):
        return {}, None
    sandbox_port = int(str(info["port"]))
    try:
        check_port_free("127.0.0.1", sandbox_port)
    except RunnerError:
        if any(env.get(name) for name in SANDBOX_PINNING_VARIABLES):
            raise RunnerError(
                f"Port {sandbox_port} on 127.0.0.1, where the sandbox gateways must listen (SANDBOX_PORT), is not "
                "available: another program (perhaps another run) uses it. Stop it, or set another port, e.g. "
                f"SANDBOX_PORT={sandbox_port + 1} make run"
            ) from None
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", 0))
            moved = probe.getsockname()[1]
        print(f"runner | port {sandbox_port} is taken; the sandbox gateways use port {moved} instead")
        sandbox_port = moved
        env["SANDBOX_PORT"] = str(sandbox_port)
    if not env.get("SANDBOX_WEBHOOK_TARGET"):
        env["SANDBOX_WEBHOOK_TARGET"] = f"http://{_local_address(host)}:{port}"
    # The demo helpers run at a lower CPU priority, so they never slow the product's own start.
    nice = ["nice", "-n", "10"] if shutil.which("nice") else []
    python = sys.executable
    manage = str(BASE_DIR / "manage.py")
    processes = {"sandbox": [*nice, python, manage, "sandbox_serve"]}
    if traffic:
        # Payments start once the app reports healthy: webhooks then find it ready.
        processes["traffic"] = [
            *nice, python, manage, "sandbox_traffic",
            "--rate", SANDBOX_TRAFFIC_RATE, "--duration", "0", "--no-progress",
            "--start-after", f"http://{_local_address(host)}:{port}/healthz",
        ]  # fmt: skip
    return processes, sandbox_port


def run(host: str, port: int, demo: bool, traffic: bool = True) -> int:
    import honcho.manager
    from honcho.manager import Manager

    # honcho sends SIGKILL 5 s after SIGTERM by default; give gunicorn (10 s graceful timeout) and
    # a Celery worker's warm shutdown time to finish what they are doing.
    honcho.manager.KILL_WAIT = 30

    env = {**os.environ, "DJANGO_ENV": os.environ.get("DJANGO_ENV", "development"), "PYTHONUNBUFFERED": "1"}
    started: list[embedded.PostgresInstance | embedded.RedisInstance] = []
    try:
        check_port_free(host, port)
        if env.get("DATABASE_URL"):
            check_database(env["DATABASE_URL"])
        else:
            postgres = embedded.postgres_start()
            print(f"runner | embedded PostgreSQL {'started' if postgres.started else 'reused'} (pid {postgres.pid})")
            if postgres.started:
                started.append(postgres)
        if env.get("REDIS_URL"):
            check_redis(env["REDIS_URL"])
        else:
            redis_server = embedded.redis_start()
            print(f"runner | embedded Redis {'started' if redis_server.started else 'reused'} (pid {redis_server.pid})")
            if redis_server.started:
                started.append(redis_server)

        _manage("migrate", "--noinput", env=env)
        _manage("install_schedules", env=env)
        if demo:
            _manage("seed_demo", env=env)
        sandbox, sandbox_port = sandbox_processes(env, host, port, traffic=demo and traffic)
        print(f"\nDashboard: http://{host}:{port}/   Admin: http://{host}:{port}/admin/   Ctrl-C stops everything.")
        if sandbox:
            pace = f", {SANDBOX_TRAFFIC_RATE} sandbox payments/s" if "traffic" in sandbox else ""
            print(f"Gateways: the Stripe and Braintree stand-in on http://127.0.0.1:{sandbox_port}{pace}.")
        print()

        manager = Manager()
        for name, command in {**process_commands(host, port), **sandbox}.items():
            manager.add_process(name, shlex.join(command), env=env, cwd=str(BASE_DIR))
        manager.loop()
        return 0 if manager.returncode in (0, 130, -2, None) else int(manager.returncode)
    except KeyboardInterrupt:
        print("\nrunner | interrupted")
        return 130
    finally:
        for server in reversed(started):
            _stop_embedded(server)


def _stop_embedded(server: embedded.PostgresInstance | embedded.RedisInstance) -> None:
    """Stop an embedded server this run started, unless another program still uses it."""
    try:
        others = server.other_clients()
        if others:
            print(
                f"runner | embedded {server.name} left running: {others} other connection(s) use it "
                "(stop it later with: make services-stop)"
            )
            return
        server.stop()
        print(f"runner | embedded {server.name} stopped")
    except Exception as error:  # one failure must not keep the other server from stopping
        print(f"runner | could not stop the embedded {server.name}: {error}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"), help="web bind address (HOST)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")), help="web port (PORT)")
    parser.add_argument("--no-demo", action="store_true", help="do not create demo data and logins")
    parser.add_argument(
        "--no-traffic", action="store_true", help="no sandbox payment traffic (the stand-in still runs)"
    )
    arguments = parser.parse_args(argv)
    load_dotenv()
    try:
        return run(arguments.host, arguments.port, demo=not arguments.no_demo, traffic=not arguments.no_traffic)
    except (RunnerError, embedded.EmbeddedServiceError) as error:
        print(f"\nrun: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
