from django.core.management.base import BaseCommand

from fintech.core.schedules import schedules_install


class Command(BaseCommand):
    help = "Create the project's standard Celery beat schedules that are missing (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--reset",
            action="store_true",
            help="Also restore existing standard schedules to their defaults, undoing edits made in the admin.",
        )

    def handle(self, *args, reset: bool = False, **options):
        result = schedules_install(reset=reset)
        for name in result.created:
            self.stdout.write(f"created   {name}")
        for name in result.reset:
            self.stdout.write(f"reset     {name}")
        for name in result.unchanged:
            self.stdout.write(f"unchanged {name}")
        self.stdout.write(
            self.style.SUCCESS(
                f"{len(result.created)} created, {len(result.reset)} reset, {len(result.unchanged)} unchanged"
            )
        )
