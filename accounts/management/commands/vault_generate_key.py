"""Print a new keyring entry to put first in PORTAL_ENCRYPTION_KEYS."""

from django.core.management.base import BaseCommand

from portal.setup_files import new_keyring_entry


class Command(BaseCommand):
    help = "Print a new 'kid:base64key' AES-256 key. Put it first in PORTAL_ENCRYPTION_KEYS."

    def handle(self, *args, **options):
        self.stdout.write(new_keyring_entry())
