"""Load a sanctions list publication as a new version (or report that it is unchanged)."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from compliance.lists.services import SOURCES, list_load_with_result
from fintech.core.audit import SystemActor
from fintech.core.exceptions import ApplicationError

ACTOR = SystemActor("manage.py load_sanctions_list")


class Command(BaseCommand):
    help = (
        "Load a sanctions list (--source ofac_sdn|un) from --path or --url, by default from the "
        "configured origin (SANCTIONS_OFAC_SDN_URL / SANCTIONS_UN_URL). OFAC: the directory or base "
        "URL holding sdn.csv, alt.csv and add.csv; UN: the consolidated XML file or URL."
    )

    def add_arguments(self, parser):
        parser.add_argument("--source", required=True, choices=sorted(SOURCES), help="Which list.")
        where = parser.add_mutually_exclusive_group()
        where.add_argument("--path", help="A local file or directory.")
        where.add_argument("--url", help="An http(s) URL.")
        parser.add_argument("--no-progress", action="store_true", help="No progress bar.")

    def handle(self, *args, source: str, path=None, url=None, no_progress=False, **options):
        if url is not None and not url.lower().startswith(("http://", "https://")):
            raise CommandError(f"--url must be an http(s) URL, got {url!r}")
        origin = path or url or settings.SANCTIONS_SOURCES.get(source, "")
        if not origin:
            raise CommandError(f"no origin configured for {source}: give --path or --url")
        bar = tqdm(desc=f"{source}: writing", unit=" entities", disable=no_progress, file=self.stderr, leave=False)

        def progress(written: int, total: int) -> None:
            bar.total = total
            bar.update(written)

        try:
            result = list_load_with_result(source=source, origin=origin, actor=ACTOR, progress=progress)
        except ApplicationError as error:
            raise CommandError(error.message) from None
        finally:
            bar.close()
        version = result.version
        if result.unchanged:
            self.stdout.write(
                f"{source}: unchanged, version {version.pk} stays active "
                f"({version.entity_count} entities, {result.seconds:.1f} s)"
            )
            return
        self.stdout.write(
            self.style.SUCCESS(
                f"{source}: version {version.pk} active: {version.entity_count} entities, "
                f"{version.added_count} added, {version.changed_count} changed, "
                f"{version.removed_count} removed ({result.seconds:.1f} s)"
            )
        )
