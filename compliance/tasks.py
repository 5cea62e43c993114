"""Compliance tasks: thin, they take ids, fetch and call a service."""

from __future__ import annotations

from celery import shared_task

from fintech.core.audit import SystemActor
from fintech.core.celery_base import FintechTask
from fintech.core.models import Customer

# Screening tasks (compliance.services).
SCREENING_SWEEP_LIMIT = 500


@shared_task(name="compliance.screen_customer", base=FintechTask, ignore_result=True)
def screen_customer(customer_id: int) -> None:
    from .services import customer_screen

    customer = Customer.objects.filter(pk=customer_id).first()
    if customer is not None:  # deleted meanwhile: nothing to screen
        customer_screen(customer=customer, actor=SystemActor("compliance.screen_customer"))


@shared_task(name="compliance.screen_counterparty", base=FintechTask, ignore_result=True)
def screen_counterparty(*, name: str, country: str, source_type: str, source_id: str) -> None:
    from .services import counterparty_screen

    counterparty_screen(
        name=name,
        country=country,
        source_type=source_type,
        source_id=source_id,
        actor=SystemActor("compliance.screen_counterparty"),
    )


@shared_task(name="compliance.rescreen_for_version", base=FintechTask)
def rescreen_for_version(version_id: int) -> int:
    """Every customer, then every payment counterparty, against a new list version's delta, one
    time slice per call (each slice queues the next; a retry continues where the run stopped);
    the RescreenRun's id."""
    from .services import rescreen_for_version as rescreen

    return rescreen(version_id=version_id, actor=SystemActor("compliance.rescreen_for_version")).pk


@shared_task(name="compliance.rescreen_all", base=FintechTask)
def rescreen_all(run_id: int) -> int:
    """Every customer, then every payment counterparty, against the full lists (requested from the
    dashboard), one time slice per call."""
    from .services import rescreen_run_full

    return rescreen_run_full(run_id=run_id, actor=SystemActor("compliance.rescreen_all")).pk


@shared_task(name="compliance.resume_stalled_rescreens", base=FintechTask)
def resume_stalled_rescreens() -> list[int]:
    """Beat: queues again the unfinished rescreen runs no worker holds; their ids."""
    from .services import rescreen_resume_stalled

    return rescreen_resume_stalled()


@shared_task(name="compliance.screen_unscreened", base=FintechTask)
def screen_unscreened() -> int:
    """Safety net for beat: screens customers never screened or changed since (a lost hook call)."""
    from .services import customers_due_for_screening

    customer_ids = customers_due_for_screening(limit=SCREENING_SWEEP_LIMIT)
    for customer_id in customer_ids:
        screen_customer.delay(customer_id)
    return len(customer_ids)


@shared_task(name="compliance.screen_unscreened_counterparties", base=FintechTask)
def screen_unscreened_counterparties() -> int:
    """Safety net for beat: screens payers of recent payments no screening records (a lost hook call)."""
    from .services import counterparties_due_for_screening

    due = counterparties_due_for_screening(limit=SCREENING_SWEEP_LIMIT)
    for counterparty in due:
        screen_counterparty.delay(**counterparty)
    return len(due)


# --------------------------------------------------------------------------- sanctions list tasks


@shared_task(name="compliance.refresh_sanctions_lists", base=FintechTask)
def refresh_sanctions_lists() -> dict[str, dict]:
    """Beat: loads every configured list (SANCTIONS_SOURCES). One list failing does not stop the
    others; the outcome of each is returned (and kept with the task result)."""
    from django.conf import settings

    from fintech.core.exceptions import ApplicationError

    from .lists.services import ListLoadError, list_load_with_result

    outcomes: dict[str, dict] = {}
    for source, origin in settings.SANCTIONS_SOURCES.items():
        try:
            result = list_load_with_result(
                source=source, origin=origin, actor=SystemActor("compliance.refresh_sanctions_lists")
            )
        except ApplicationError as exc:  # ListLoadError, or a misconfigured source
            version_id = exc.version_id if isinstance(exc, ListLoadError) else None
            outcomes[source] = {"status": "failed", "version_id": version_id, "error": exc.message}
            continue
        version = result.version
        outcomes[source] = {"status": "unchanged", "version_id": version.pk, "entities": version.entity_count}
        if not result.unchanged:
            outcomes[source].update(
                status="loaded", added=version.added_count, changed=version.changed_count, removed=version.removed_count
            )
    return outcomes
