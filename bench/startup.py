"""Start-up time of the run command: a first run on an empty var/ directory, then repeated runs.

Each run is ``./run`` with DATABASE_URL/REDIS_URL unset (embedded servers) and a scratch
FINTECH_VAR_DIR; it is timed until the web answers and until /healthz is 200 (database, Redis
and a worker heartbeat scheduled by beat), then stopped with SIGINT, as Ctrl-C would.

    .venv/bin/python bench/startup.py [--runs 3]
"""

import argparse
import os
import platform
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback only
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def one_run(var_dir: Path) -> tuple[float, float]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"}}
    env.update(FINTECH_VAR_DIR=str(var_dir), DJANGO_ENV="development")
    started = time.monotonic()
    runner = subprocess.Popen(  # noqa: S603
        [str(BASE_DIR / "run"), "--port", str(port)],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    web = healthy = None
    try:
        while time.monotonic() - started < 180 and runner.poll() is None:
            code = status(f"http://127.0.0.1:{port}/healthz")
            if code is not None and web is None:
                web = time.monotonic() - started
            if code == 200:
                healthy = time.monotonic() - started
                break
            time.sleep(0.1)
    finally:
        os.killpg(runner.pid, signal.SIGINT)
        runner.wait(timeout=60)
    if web is None or healthy is None:
        raise SystemExit("the stack did not become healthy within 180 s")
    return web, healthy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="warm runs after the first (default 3)")
    arguments = parser.parse_args()
    var_dir = Path(tempfile.mkdtemp(prefix="fintech-bench-"))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"{'run':<10}{'web answers':>14}{'healthy':>12}")
    try:
        web, healthy = one_run(var_dir)
        print(f"{'first':<10}{web:>13.1f}s{healthy:>11.1f}s")
        warm = []
        for index in range(arguments.runs):
            web, healthy = one_run(var_dir)
            warm.append(healthy)
            print(f"{'again ' + str(index + 1):<10}{web:>13.1f}s{healthy:>11.1f}s")
        print(f"warm median to healthy: {sorted(warm)[len(warm) // 2]:.1f}s")
    finally:
        shutil.rmtree(var_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
