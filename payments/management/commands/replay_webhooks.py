"""Replay stored webhook events: failed ones, one by id, a type, or everything since a time.

Processed and ignored events are left alone (replaying them is a no-op by design). Events run
here, one by one with a progress bar, unless --enqueue hands them to the workers.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_datetime
from tqdm import tqdm

from fintech.core.audit import SystemActor
from payments.inbox import DONE, webhook_replay
from payments.models import WebhookEvent, WebhookEventStatus


class Command(BaseCommand):
    help = "Replay stored webhook events (failed or not yet processed ones; processed events are left alone)."

    def add_arguments(self, parser):
        parser.add_argument("--id", type=int, action="append", dest="ids", help="event id (repeatable)")
        parser.add_argument("--failed", action="store_true", help="every failed event")
        parser.add_argument("--type", dest="event_type", help="events of this type, e.g. charge.refunded")
        parser.add_argument("--since", help="events received at or after this ISO 8601 time")
        parser.add_argument("--enqueue", action="store_true", help="queue for the workers instead of running here")

    def handle(self, *args, ids=None, failed=False, event_type=None, since=None, enqueue=False, **options):
        if not (ids or failed or event_type or since):
            raise CommandError("say which events: --id N, --failed, --type TYPE and/or --since TIME")
        events = WebhookEvent.objects.order_by("received_at", "pk")
        if ids:
            events = events.filter(pk__in=ids)
            missing = set(ids) - set(events.values_list("pk", flat=True))
            if missing:
                raise CommandError(f"no webhook event with id {', '.join(map(str, sorted(missing)))}")
        if failed:
            events = events.filter(status=WebhookEventStatus.FAILED)
        if event_type:
            events = events.filter(event_type=event_type)
        if since:
            moment = parse_datetime(since)
            if moment is None or moment.tzinfo is None:
                raise CommandError(f"--since {since!r} is not an ISO 8601 time with a zone, e.g. 2026-01-31T12:00:00Z")
            events = events.filter(received_at__gte=moment)
        selected = list(events)
        skipped = [event for event in selected if event.status in DONE]
        to_run = [event for event in selected if event.status not in DONE]
        outcomes: dict[str, int] = {}
        actor = SystemActor("replay_webhooks")
        for event in tqdm(to_run, desc="replaying", unit="event", disable=not to_run):
            result = webhook_replay(event=event, actor=actor, inline=not enqueue)
            outcomes[result.reason] = outcomes.get(result.reason, 0) + 1
        summary = ", ".join(f"{count} {outcome}" for outcome, count in sorted(outcomes.items())) or "nothing to replay"
        self.stdout.write(
            f"{len(selected)} selected; {len(skipped)} already processed or ignored (left alone); {summary}"
        )
