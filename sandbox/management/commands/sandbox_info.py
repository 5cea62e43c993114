"""``manage.py sandbox_info``: whether the gateways point at the stand-in, as JSON (for the run command)."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from sandbox.sdk import is_stand_in_url


class Command(BaseCommand):
    help = "Print, as JSON, whether the Stripe/Braintree settings point at the local stand-in, and its port."

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(
            json.dumps(
                {
                    "stand_in": is_stand_in_url(settings.STRIPE_API_BASE),
                    "port": settings.SANDBOX_PORT,
                    "stripe_api_base": settings.STRIPE_API_BASE,
                    "braintree_environment": settings.BRAINTREE_ENVIRONMENT,
                    "webhook_target": settings.SANDBOX_WEBHOOK_TARGET,
                }
            )
        )
