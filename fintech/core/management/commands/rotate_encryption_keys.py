from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from fintech.core.crypto import keyring
from fintech.core.encryption import (
    count_values,
    encrypted_columns,
    encryption_check,
    encryption_rotate,
    mfa_secret_count,
)


class Command(BaseCommand):
    help = (
        "Re-encrypt every encrypted column under the current (first) key of FIELD_ENCRYPTION_KEYS, in "
        "batches; safe to interrupt and run again. --check only reports how many values use each key."
    )

    def add_arguments(self, parser):
        parser.add_argument("--check", action="store_true", help="report values per key id; exit 1 if any old key")
        parser.add_argument("--batch-size", type=int, default=500, help="rows per transaction (default 500)")

    def handle(self, *args, check: bool = False, batch_size: int = 500, **options):
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        current = keyring().current_key_id
        if check:
            reports = encryption_check()
            old = 0
            for report in reports:
                counts = ", ".join(f"{key}: {count}" for key, count in sorted(report.values_by_key.items())) or "empty"
                self.stdout.write(f"{report.label:<40} {counts}")
                old += sum(count for key, count in report.values_by_key.items() if key != current)
            self.stdout.write(f"current key: {current}; values under other keys: {old}")
            if old:
                raise CommandError(f"{old} values still use an old key; run rotate_encryption_keys.")
            return

        total = sum(count_values(model, field) for model, field in encrypted_columns()) + mfa_secret_count()
        with tqdm(total=total, unit="value", desc="re-encrypting", disable=None) as bar:
            reports = encryption_rotate(batch_size=batch_size, on_progress=lambda label, done: bar.update(done))
        rotated = sum(report.rotated for report in reports)
        errors = [error for report in reports for error in report.errors]
        self.stdout.write(
            f"{rotated} values re-encrypted under key {current}; {total - rotated - len(errors)} already current; "
            f"{len(errors)} unreadable."
        )
        for error in errors[:20]:
            self.stderr.write(f"  {error}")
        if errors:
            raise CommandError(f"{len(errors)} values could not be decrypted with any key in FIELD_ENCRYPTION_KEYS.")
