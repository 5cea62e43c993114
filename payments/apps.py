from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    """Depends on fintech.core only."""

    name = "payments"
    verbose_name = "Payments"
    standard_schedules = [
        {
            "name": "payments: retry failed and lost webhooks",
            "task": "payments.sweep_webhooks",
            "description": "Re-enqueues failed webhook events due for retry and received ones whose task was lost.",
            "every_seconds": 30,
        },
        {
            "name": "payments: dunning retries",
            "task": "payments.run_dunning",
            "description": "Retries failed payments whose dunning step is due (PAYMENTS_DUNNING_RETRY_HOURS).",
            "every_seconds": 60,
        },
        {
            "name": "payments: resolve pending Braintree refunds",
            "task": "payments.resolve_pending_refunds",
            "description": "Looks again at Braintree refunds and voids whose answer was lost; records or retries them.",
            "every_seconds": 300,
        },
        {
            "name": "payments: purge expired idempotency keys",
            "task": "payments.purge_idempotency_records",
            "description": "Deletes merchant API Idempotency-Keys older than API_IDEMPOTENCY_TTL_HOURS (03:15 UTC).",
            "crontab": {"minute": "15", "hour": "3"},
        },
    ]
