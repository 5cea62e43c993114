"""The process-wide screener over every live list entity, rebuilt when a list version changes.

Building the index takes seconds, so each process (web or worker) keeps one. Knowing whether it
is stale must cost almost nothing: a cache key (Redis) holds a token naming the active list
versions; the ``list_version_activated`` receiver rewrites it. Each ``current_screener()`` call
reads that one key and compares it with the token the process built its screener for; when the
key is missing (a flushed cache) the token is recomputed from the database once and stored again.
"""

from __future__ import annotations

import gc
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.core.cache import cache

from .lists.selectors import active_versions, live_entities

if TYPE_CHECKING:
    from .screening import Screener

CACHE_KEY = "compliance:screening:active-versions"
# Long: the receiver rewrites it on every activation; a lost key is recomputed.
CACHE_TIMEOUT_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True)
class ScreenerState:
    token: str
    screener: Screener
    # list source -> id of the active ListVersion the screener was built from.
    version_ids: dict[str, int]
    entity_count: int


_lock = threading.Lock()
_state: ScreenerState | None = None


def _versions_token(versions: dict[str, int]) -> str:
    return ",".join(f"{source}:{version_id}" for source, version_id in sorted(versions.items())) or "none"


def _active_version_ids() -> dict[str, int]:
    return {source: version.pk for source, version in active_versions().items()}


def screener_invalidate() -> None:
    """Called when a list version becomes active: every process rebuilds on its next use."""
    cache.set(CACHE_KEY, _versions_token(_active_version_ids()), timeout=CACHE_TIMEOUT_SECONDS)


def current_state() -> ScreenerState:
    """The screener over the active versions, rebuilt in this process when they changed."""
    global _state
    token = cache.get(CACHE_KEY)
    if token is None:
        token = _versions_token(_active_version_ids())
        cache.set(CACHE_KEY, token, timeout=CACHE_TIMEOUT_SECONDS)
    state = _state
    if state is not None and state.token == token:
        return state
    with _lock:
        if _state is not None and _state.token == token:
            return _state
        # Read the versions first: entities loaded meanwhile belong to a newer token, which the
        # next call sees and rebuilds for.
        from .screening import Screener

        version_ids = _active_version_ids()
        entities = list(live_entities())
        screener = Screener.build(entities)
        # Remembered under the token read above, never one computed here: if the two differ, a
        # version changed meanwhile and its receiver's new token makes the next call rebuild once.
        _state = ScreenerState(token=token, screener=screener, version_ids=version_ids, entity_count=len(entities))
        # The index is hundreds of thousands of long-lived objects. Frozen out of the collector's
        # generations, full collections stop walking them (a pause of ~0.4 s inside a search);
        # unfrozen first so a previous index, now unreferenced, is collected.
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        return _state


def current_screener() -> Screener:
    return current_state().screener


def screener_forget() -> None:
    """Drop this process's screener (tests; memory)."""
    global _state
    with _lock:
        _state = None
