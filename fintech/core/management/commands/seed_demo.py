from django.core.management.base import BaseCommand

from fintech.demo import demo_seed


class Command(BaseCommand):
    help = "Create the demo data and demo logins that are missing (idempotent; refused in production)."

    def handle(self, *args, **options):
        logins = demo_seed()
        self.stdout.write("Demo logins (this machine's demo only; a second factor is required for staff):")
        self.stdout.write(f"  {'user':<12} {'password':<20} {'TOTP secret (add to an authenticator app)':<34} role")
        for login in logins:
            password = login.password or "(existing account, left unchanged)"
            self.stdout.write(f"  {login.username:<12} {password:<20} {login.totp_secret or '-':<34} {login.role}")
        self.stdout.write("  Current code without an app: python manage.py demo_code USER")
