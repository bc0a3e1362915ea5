"""Run the demo: migrate, seed the demo tenant, print how to use it, and serve."""

import os
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from core.conf import conf
from sandbox.demo import demo_seed, demo_summary


class Command(BaseCommand):
    help = "Migrate, seed the demo tenant and the sandbox provider, print the logins, and serve."

    def add_arguments(self, parser):
        parser.add_argument(
            "--no-serve", action="store_true", help="Seed and print, but do not start the server."
        )

    def handle(self, *args, no_serve: bool, **options):
        if not conf.SANDBOX_ENABLED:
            raise CommandError(
                "The demo needs the sandbox provider: set PORTAL_SANDBOX_ENABLED=true."
            )
        call_command("migrate", interactive=False, verbosity=0)
        database = Path(settings.DATABASES["default"]["NAME"])
        if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3") and database.exists():
            database.chmod(0o600)  # like the key files beside it: the owner's alone
        seed = demo_seed(base_url=conf.BASE_URL, var_dir=settings.VAR_DIR)
        self.stdout.write(demo_summary(seed))
        if no_serve:
            return
        port = getattr(settings, "PORT", int(os.environ.get("PORT", "8000")))
        self.stdout.write(f"Serving on {conf.BASE_URL}/ (Ctrl+C to stop)\n")
        call_command("runserver", f"127.0.0.1:{port}", use_reloader=False)
