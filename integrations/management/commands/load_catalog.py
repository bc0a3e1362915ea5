"""Load the shipped catalog of providers into the database; safe to run on every deploy."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from integrations.services.catalog import CATALOG_PATH, CatalogError, catalog_load


class Command(BaseCommand):
    help = (
        "Create or update the catalog apps described in integrations/catalog/apps.toml. "
        "All or nothing: a bad entry changes nothing. Apps no longer in the file are left alone."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--path",
            type=Path,
            default=None,
            help=f"Catalog file to load (default: {CATALOG_PATH}).",
        )

    def handle(self, *args, path: Path | None, **options):
        try:
            result = catalog_load(path=path)
        except CatalogError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"Created {result.created_count}, updated {result.updated_count}, "
                f"unchanged {result.unchanged_count} apps."
            )
        )
        if result.created:
            self.stdout.write(f"  Created: {', '.join(result.created)}")
        if result.updated:
            self.stdout.write(f"  Updated: {', '.join(result.updated)}")
        if result.not_in_file:
            self.stdout.write(
                self.style.WARNING(
                    f"  Not in the file, left as they are: {', '.join(result.not_in_file)}"
                )
            )
