"""The run command: services, migrations, demo data, then web + worker + beat in one terminal.

``./run`` (or ``make run``) creates the virtualenv and calls ``python -m fintech.runner``.
Steps: check the web port is free; use DATABASE_URL / REDIS_URL when set (checking they
answer), else start the embedded servers under var/; migrate; create demo data and print the
demo logins; then run gunicorn, a Celery worker and Celery beat with interleaved, prefixed
logs. Ctrl-C (or any process exiting) stops all of them, and the embedded servers this run
started. Every failure is explained with what to do, and leaves nothing running.
"""

from __future__ import annotations

import argparse
import os
import shlex
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
            "--bind", f"{host}:{port}",
            "--workers", os.environ.get("WEB_CONCURRENCY", "2"),
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


def run(host: str, port: int, demo: bool) -> int:
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
        print(f"\nDashboard: http://{host}:{port}/   Admin: http://{host}:{port}/admin/   Ctrl-C stops everything.\n")

        manager = Manager()
        for name, command in process_commands(host, port).items():
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
    arguments = parser.parse_args(argv)
    load_dotenv()
    try:
        return run(arguments.host, arguments.port, demo=not arguments.no_demo)
    except (RunnerError, embedded.EmbeddedServiceError) as error:
        print(f"\nrun: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
