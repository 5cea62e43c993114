"""The dashboard's sections: navigation and the tasks that belong to each."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Section:
    slug: str
    title: str
    summary: str
    # Celery task names of this section start with this prefix ("payments.reconcile", ...).
    task_prefix: str
    # The permission a staff member needs to open the section.
    permission: str


SECTIONS = (
    Section(
        "payments",
        "Payments",
        "Stripe and Braintree webhooks, payments, refunds, disputes, the ledger and its reconciliation.",
        "payments.",
        "core.view_payments",
    ),
    Section(
        "banking",
        "Banking",
        "Linked bank accounts, balance and transaction sync, transfers.",
        "banking.",
        "core.view_banking",
    ),
    Section(
        "compliance",
        "Compliance",
        "Sanctions screening, transaction monitoring, alerts, cases and reports.",
        "compliance.",
        "core.view_compliance",
    ),
)
SECTIONS_BY_SLUG = {section.slug: section for section in SECTIONS}
