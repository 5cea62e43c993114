from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from fintech.demo import demo_totp_code


class Command(BaseCommand):
    help = "Print the current TOTP code of a demo login (demo only; refused in production)."

    def add_arguments(self, parser):
        parser.add_argument("username")

    def handle(self, *args, username: str, **options):
        try:
            self.stdout.write(demo_totp_code(username))
        except (KeyError, ImproperlyConfigured) as error:
            raise CommandError(str(error).strip("'\"")) from None
