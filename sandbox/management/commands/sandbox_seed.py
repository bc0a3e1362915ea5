"""Create the sandbox provider's demo accounts (alice, bob and carol); safe to run again."""

from django.core.management.base import BaseCommand

from sandbox.services import SANDBOX_PASSWORD, sandbox_seed


class Command(BaseCommand):
    help = "Create the sandbox provider's demo accounts and their items."

    def handle(self, *args, **options) -> None:
        for account in sandbox_seed():
            self.stdout.write(f"{account.email} (password: {SANDBOX_PASSWORD})")
