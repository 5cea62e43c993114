"""Hooks: how the core calls a higher layer without importing it.

A setting (``CUSTOMER_SCREENING_HOOK``...) holds the dotted path of a function; ``hook_call``
imports it once and calls it with keyword arguments. An empty setting means no hook.

A hook must be cheap and must not fail for ordinary reasons: the ones wired here only enqueue a
Celery task. An error in a hook is logged and raised to the caller, never swallowed, so a
screening that could not be requested is visible; callers that run a hook after their commit use
``hook_on_commit``, which logs the error instead of failing a request whose writes are already
committed (the screening sweep, ``compliance.screen_unscreened``, catches up with such gaps).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils.module_loading import import_string

logger = logging.getLogger("fintech.hooks")


@functools.cache
def _hook(path: str) -> Callable[..., Any]:
    try:
        function = import_string(path)
    except ImportError as error:
        raise ImproperlyConfigured(f"The hook {path!r} cannot be imported: {error}") from error
    if not callable(function):
        raise ImproperlyConfigured(f"The hook {path!r} is not callable.")
    return function


def hook_call(setting_name: str, **kwargs: Any) -> Any:
    """Call the function named by ``settings.<setting_name>`` (no-op when it is unset or empty)."""
    path = getattr(settings, setting_name, None)
    if not path:
        return None
    try:
        return _hook(path)(**kwargs)
    except Exception:
        logger.exception("hook %s (%s) failed", setting_name, path)
        raise


def hook_on_commit(setting_name: str, **kwargs: Any) -> None:
    """``hook_call`` once the current transaction commits; a failure is logged, the commit stands."""

    def call() -> None:
        hook_call(setting_name, **kwargs)

    # A function, not a partial: Django names the callback (__qualname__) when it logs its error.
    call.__qualname__ = f"hook_call({setting_name})"
    transaction.on_commit(call, robust=True)
