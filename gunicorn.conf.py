"""gunicorn settings for the web process.

``gunicorn fintech.wsgi`` reads this file from the directory it starts in (the project's); from
anywhere else pass ``--config /path/to/gunicorn.conf.py``. The run command passes it explicitly.
Flags on the command line and in ``GUNICORN_CMD_ARGS`` override it.

Threaded workers keep connections alive between requests, so payment gateways, load balancers and
merchants' systems reuse their connections, and a slow client holds one thread, not a whole
process: this is the layout the webhook ingestion figures in docs/benchmarks.md were measured
with. gunicorn's sync workers (``-k sync`` with ``--threads 1``; with more threads gunicorn runs
gthread whatever the class asked for) close the connection after every request.
Each thread holds its own database connection: size PostgreSQL's ``max_connections`` for
``WEB_CONCURRENCY x WEB_THREADS`` per web machine, plus the workers.
"""

import os
from pathlib import Path

import environ


def _dotenv() -> dict[str, str]:
    """The project's .env, as the settings and the run command read it, without exporting it.

    The master must not hold .env's values in its environment: workers it starts after a HUP
    would inherit them and never see an edited .env.
    """
    path = Path(__file__).resolve().parent / ".env"
    if not path.is_file():
        return {}
    before = dict(os.environ)
    environ.Env.read_env(path)
    values = {name: value for name, value in os.environ.items() if name not in before}
    for name in values:
        del os.environ[name]
    return values


_DOTENV = _dotenv()


def _count(name: str, default: int) -> int:
    value = (os.environ.get(name) or _DOTENV.get(name) or "").strip() or str(default)
    try:
        count = int(value)
    except ValueError:
        count = 0
    if count < 1:
        raise SystemExit(f"{name} must be a whole number of at least 1, not {value!r}.")
    return count


wsgi_app = "fintech.wsgi"
worker_class = "gthread"
workers = _count("WEB_CONCURRENCY", 2)
threads = _count("WEB_THREADS", 4)
# Seconds an idle kept-alive connection stays open, holding no thread. Longer than a load
# balancer's idle timeout (60 s by default on the common ones), so the balancer in front, never
# gunicorn, closes an idle connection, and no request is sent on a connection gunicorn is closing.
keepalive = 75
