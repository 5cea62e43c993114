from django.core.management.base import BaseCommand

from fintech.demo import demo_seed


class Command(BaseCommand):
    help = "Create the demo data and demo logins that are missing (idempotent; refused in production)."

    def handle(self, *args, **options):
        logins = demo_seed()
        self.stdout.write("Demo logins (for this machine's demo only):")
        for login in logins:
            password = login.password or "(existing account, left unchanged)"
            self.stdout.write(f"  {login.username:<12} {password:<20} {login.role}")
