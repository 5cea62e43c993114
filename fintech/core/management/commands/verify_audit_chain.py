from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from fintech.core.audit import audit_chain_verify
from fintech.core.models import AuditEvent


class Command(BaseCommand):
    help = "Recompute the audit trail's hash chain, record the result, and name the first broken entry."

    def handle(self, *args, **options):
        with tqdm(total=AuditEvent.objects.count(), unit="entry", desc="verifying", disable=None) as bar:
            verification = audit_chain_verify(triggered_by="verify_audit_chain", on_progress=bar.update)
        if not verification.ok:
            raise CommandError(
                f"Audit chain BROKEN at entry #{verification.first_broken_seq}: {verification.message} "
                f"({verification.events_checked} entries before it are intact)."
            )
        self.stdout.write(self.style.SUCCESS(f"Audit chain intact: {verification.events_checked} entries verified."))
