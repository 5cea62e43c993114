"""gunicorn settings for the web process.

``gunicorn fintech.wsgi`` run from the project directory reads this file; the run command passes it
explicitly. Flags on the command line and in ``GUNICORN_CMD_ARGS`` override it.

Threaded workers keep connections alive between requests, so payment gateways, load balancers and
merchants' systems reuse their connections: this is the layout the webhook ingestion figures in
docs/benchmarks.md were measured with. gunicorn's sync workers close the connection after every
request and accept a new one, which costs those endpoints about a tenth of their throughput.
Each thread holds its own database connection: size PostgreSQL's ``max_connections`` for
``WEB_CONCURRENCY x WEB_THREADS`` per web machine, plus the workers.
"""

import os
from pathlib import Path

import environ

# The project's .env, as the settings and the run command read it; variables already set win.
_DOTENV = Path(__file__).resolve().parent / ".env"
if _DOTENV.is_file():
    environ.Env.read_env(_DOTENV)


def _count(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip() or str(default)
    if not value.isdigit() or int(value) < 1:
        raise SystemExit(f"{name} must be a whole number of at least 1, not {value!r}.")
    return int(value)


wsgi_app = "fintech.wsgi"
worker_class = "gthread"
workers = _count("WEB_CONCURRENCY", 2)
threads = _count("WEB_THREADS", 4)
# Seconds an idle connection is kept open. Longer than a load balancer's idle timeout (60 s by
# default on the common ones), so the balancer, never gunicorn, closes an idle connection and a
# request is never sent on a connection gunicorn is closing. An idle connection holds no thread.
keepalive = 75
