"""Health endpoint for load balancers and monitors."""

import redis
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from . import selectors


def _check_database() -> dict:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return {"ok": True}


def _check_redis() -> dict:
    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    finally:
        client.close()
    return {"ok": True}


def _check_worker() -> dict:
    health = selectors.worker_health()
    return {
        "ok": health.ok,
        "hostname": health.heartbeat.hostname if health.heartbeat else None,
        "last_heartbeat": health.heartbeat.last_seen_at.isoformat() if health.heartbeat else None,
        "age_seconds": round(health.age_seconds, 1) if health.age_seconds is not None else None,
        "max_age_seconds": health.max_age_seconds,
    }


@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    """200 when the database and Redis answer and a worker ran the health task recently, else 503."""
    checks = {}
    for name, check in (("database", _check_database), ("redis", _check_redis), ("worker", _check_worker)):
        try:
            checks[name] = check()
        except Exception as error:  # a health check reports failures, it never raises
            checks[name] = {"ok": False, "error": type(error).__name__}
    healthy = all(result["ok"] for result in checks.values())
    return JsonResponse({"status": "ok" if healthy else "failing", "checks": checks}, status=200 if healthy else 503)
