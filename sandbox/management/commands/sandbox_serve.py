"""``manage.py sandbox_serve``: run the Stripe and Braintree stand-in until interrupted."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from sandbox.delivery import ConfigError, SandboxConfig
from sandbox.server import SandboxApp, SandboxCredentials, SandboxNotConfigured, SandboxServer


class Command(BaseCommand):
    help = (
        "Serve the local Stripe and Braintree stand-in (development and demo only; state is kept in memory). "
        "Webhooks go to SANDBOX_WEBHOOK_TARGET; see docs/sandbox.md."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
        parser.add_argument("--port", type=int, default=None, help="port (default settings.SANDBOX_PORT)")
        parser.add_argument(
            "--webhook-target", default=None, help="base URL webhooks go to (default settings.SANDBOX_WEBHOOK_TARGET)"
        )
        parser.add_argument("--lifecycle-delay-ms", type=int, default=None, help="delay of settlement, disputes...")
        parser.add_argument("--seed", type=int, default=None, help="seed for reproducible chaos")

    def handle(self, *args: Any, **options: Any) -> None:
        port = options["port"] if options["port"] is not None else settings.SANDBOX_PORT
        try:
            credentials = SandboxCredentials.from_settings(settings)
            config = SandboxConfig(
                webhook_target=options["webhook_target"] or settings.SANDBOX_WEBHOOK_TARGET,
                seed=options["seed"],
            )
            if options["lifecycle_delay_ms"] is not None:
                config.lifecycle_delay_ms = options["lifecycle_delay_ms"]
            app = SandboxApp(credentials, config)
        except (SandboxNotConfigured, ConfigError) as error:
            raise CommandError(str(error)) from None
        if options["host"] not in {"127.0.0.1", "localhost", "::1"}:
            self.stderr.write(
                f"Warning: listening on {options['host']}: the control API has no authentication; "
                "keep the stand-in on a trusted network."
            )
        try:
            server = SandboxServer(app, options["host"], port)
        except OSError as error:
            raise CommandError(
                f"Port {port} on {options['host']} is not available ({error.strerror}): is another sandbox running? "
                f"Stop it, or use another port, e.g. SANDBOX_PORT={port + 1}."
            ) from None
        if options["verbosity"] >= 2:
            logging.getLogger("sandbox").setLevel(logging.DEBUG)
        self.stdout.write(
            f"Sandbox gateways (Stripe and Braintree stand-in) on {server.url}; "
            f"webhooks to {config.webhook_target}/webhooks/stripe/ and /webhooks/braintree/. "
            "State is in memory. Ctrl-C stops."
        )

        def stop(signum: int, frame: object) -> None:
            # shutdown() waits for serve_forever() to return, so it must run on another thread.
            threading.Thread(target=server.httpd.shutdown, daemon=True).start()

        previous = signal.signal(signal.SIGTERM, stop)
        try:
            with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how a developer stops it
                server.serve_forever()
        finally:
            signal.signal(signal.SIGTERM, previous)
        self.stdout.write("Sandbox gateways stopped.")
