"""``manage.py sandbox_traffic``: a realistic stream of payments against the stand-in."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from sandbox.sdk import braintree_gateway, is_stand_in_url, stripe_client
from sandbox.traffic import SandboxControl, TrafficError, TrafficGenerator, TrafficOptions, wait_for_url


class Command(BaseCommand):
    help = (
        "Create realistic payment traffic (successes, declines, 3-D Secure, refunds, disputes, payouts) on the "
        "sandbox stand-in through the Stripe and Braintree SDKs. Refuses to run against real gateways."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--rate", type=float, default=1.0, help="new payments per second (default 1)")
        parser.add_argument("--duration", type=float, default=60.0, help="seconds to run; 0 runs until stopped")
        parser.add_argument("--stripe-share", type=float, default=0.7, help="share of payments made on Stripe")
        parser.add_argument("--seed", type=int, default=None, help="seed for a reproducible mix")
        parser.add_argument("--payout-every", type=float, default=30.0, help="seconds between payout rounds")
        parser.add_argument(
            "--wait", type=float, default=0.0, help="seconds to wait for the stand-in (and --start-after) to answer"
        )
        parser.add_argument(
            "--start-after",
            default="",
            metavar="URL",
            help="wait until this URL answers 200 (e.g. the app's /healthz) before the first payment",
        )
        parser.add_argument("--no-progress", action="store_true", help="no progress bar (status lines instead)")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["rate"] <= 0 or options["duration"] < 0 or not 0 <= options["stripe_share"] <= 1:
            raise CommandError("--rate must be positive, --duration >= 0 and --stripe-share between 0 and 1.")
        if options["payout_every"] <= 0:
            raise CommandError("--payout-every must be positive.")
        api_base = settings.STRIPE_API_BASE
        if not is_stand_in_url(api_base) or not is_stand_in_url(settings.BRAINTREE_ENVIRONMENT):
            raise CommandError(
                "sandbox_traffic only talks to the local stand-in, but STRIPE_API_BASE is "
                f"{api_base!r} and BRAINTREE_ENVIRONMENT is {settings.BRAINTREE_ENVIRONMENT!r}. "
                "Point both at http://127.0.0.1:<SANDBOX_PORT> (the development settings do when STRIPE_API_KEY "
                "is unset)."
            )
        # The SDK logs every request at INFO; the progress bar or status lines say enough.
        logging.getLogger("stripe").setLevel(logging.WARNING)
        control = SandboxControl(api_base)
        # Run until stopped (the run command) means waiting as long as it takes: exiting would stop the whole stack.
        wait = options["wait"] if options["duration"] else float("inf")
        try:
            control.wait_until_up(wait)
            if options["start_after"]:
                wait_for_url(options["start_after"], wait)
        except TrafficError as error:
            raise CommandError(str(error)) from None
        generator = TrafficGenerator(
            stripe_client=stripe_client(settings.STRIPE_API_KEY, api_base),
            braintree_gateway=braintree_gateway(
                settings.BRAINTREE_ENVIRONMENT,
                merchant_id=settings.BRAINTREE_MERCHANT_ID,
                public_key=settings.BRAINTREE_PUBLIC_KEY,
                private_key=settings.BRAINTREE_PRIVATE_KEY,
            ),
            control=control,
            options=TrafficOptions(
                rate=options["rate"],
                duration=options["duration"],
                stripe_share=options["stripe_share"],
                seed=options["seed"],
                payout_every=options["payout_every"],
                progress=False if options["no_progress"] else None,
            ),
            log=lambda line: self.stdout.write(line),
        )
        forever = "until stopped" if not options["duration"] else f"for {options['duration']:g} s"
        self.stdout.write(f"Sandbox traffic: {options['rate']:g} payments/s {forever} on {api_base}")
        stop = threading.Event()
        # SIGTERM (how the run command stops it) ends the loop and still prints the summary.
        previous = signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
        try:
            summary = generator.run(stop)
        except KeyboardInterrupt:
            summary = generator.summary
        except TrafficError as error:
            raise CommandError(str(error)) from None
        finally:
            signal.signal(signal.SIGTERM, previous)
        self.stdout.write("Sandbox traffic summary:")
        for line in summary.lines():
            self.stdout.write("  " + line)
