from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from fintech.core.audit import audit_chain_verify, parse_head
from fintech.core.models import AuditEvent


class Command(BaseCommand):
    help = (
        "Recompute the audit trail's hash chain, check the signed checkpoints (and optionally a head kept "
        "elsewhere), record the result, name the first failure, and sign a checkpoint for the verified head."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--expect-head",
            metavar="SEQ:HASH",
            help="an entry number and hash kept outside the database (e.g. from a logged checkpoint); "
            "the entry must still exist with that hash",
        )

    def handle(self, *args, expect_head: str | None = None, **options):
        expected_head = None
        if expect_head is not None:
            try:
                expected_head = parse_head(expect_head)
            except ValueError as error:
                raise CommandError(f"--expect-head: {error}.") from None
        with tqdm(total=AuditEvent.objects.count(), unit="entry", desc="verifying", disable=None) as bar:
            verification = audit_chain_verify(
                triggered_by="verify_audit_chain", on_progress=bar.update, expected_head=expected_head
            )
        if not verification.ok:
            raise CommandError(f"Audit chain BROKEN at entry #{verification.first_broken_seq}: {verification.message}")
        self.stdout.write(self.style.SUCCESS(f"Audit chain intact: {verification.events_checked} entries verified."))
        self.stdout.write(verification.message)
        checkpoint = getattr(verification, "checkpoint", None)
        if checkpoint is not None:
            self.stdout.write(
                f"Signed checkpoint (key {checkpoint.key_id}); keep this head to check later with "
                f"--expect-head: {checkpoint.seq}:{checkpoint.chain_hash}"
            )
