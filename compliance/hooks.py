"""Entry points the lower layers reach through settings (``fintech.core.hooks``) and signals.

Each only enqueues a Celery task once the caller's transaction commits: cheap, and it cannot
fail for a reason of the caller's data. The screening itself runs in the worker.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fintech.core.queue import enqueue_on_commit


def customer_changed(*, customer_id: int, fields: Sequence[str] = ()) -> None:
    """CUSTOMER_SCREENING_HOOK: a customer was created, or a screened field of it changed."""
    from . import tasks

    enqueue_on_commit(tasks.screen_customer, customer_id)


def counterparty_recorded(*, name: str, country: str, source_type: str, source_id: Any) -> None:
    """COUNTERPARTY_SCREENING_HOOK: a payment named a counterparty (payer or payee)."""
    from . import tasks

    enqueue_on_commit(
        tasks.screen_counterparty,
        name=str(name),
        country=str(country or ""),
        source_type=source_type,
        source_id=str(source_id),
    )


def list_version_activated(sender: Any, *, version_id: int, **kwargs: Any) -> None:
    """Receiver of ``compliance.lists.signals.list_version_activated``: new lists are in force.

    Every process's screener goes stale (it rebuilds on next use) and the customers are screened
    against the version's delta.
    """
    from . import tasks
    from .screening_cache import screener_invalidate

    screener_invalidate()
    enqueue_on_commit(tasks.rescreen_for_version, version_id)
