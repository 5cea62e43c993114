from django.core.management.base import BaseCommand, CommandError

from fintech.core.crypto import KeyringError, generate_key_entry


class Command(BaseCommand):
    help = "Print a new AUDIT_ANCHOR_KEYS entry (<key id>:<base64 32-byte key>). See docs/security.md."

    def add_arguments(self, parser):
        parser.add_argument("key_id", help="a name for the key, e.g. anchor-2026-11 (letters, digits, '.', '_', '-')")

    def handle(self, *args, key_id: str, **options):
        try:
            entry = generate_key_entry(key_id)
        except KeyringError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(entry)
        self.stderr.write(
            "Put this entry first in AUDIT_ANCHOR_KEYS and keep the old entries after it: they still verify the "
            "checkpoints they signed. Store the key in your secret manager, apart from database credentials."
        )
