"""Re-encrypt every secret under the newest key of PORTAL_ENCRYPTION_KEYS."""

from django.core.management.base import BaseCommand, CommandError

from accounts.services.vault_rotation import vault_key_usage, vault_rotate
from core.vault import VaultError, get_keyring


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored secret under the current (first) key of the keyring, in "
        "batches. Safe to interrupt and to run again. Afterwards, an old key can be removed "
        "once --status shows it holds no secret."
    )

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=500)
        parser.add_argument(
            "--status", action="store_true", help="Only show how many secrets each key holds."
        )

    def handle(self, *args, batch_size: int, status: bool, **options):
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        try:
            current = get_keyring().current_key_id
        except VaultError as exc:
            raise CommandError(str(exc)) from exc
        if status:
            self.stdout.write(f"Current key: {current}")
            for label, counts in vault_key_usage().items():
                summary = ", ".join(f"{key}: {count}" for key, count in sorted(counts.items()))
                self.stdout.write(f"  {label}: {summary or 'no secrets'}")
            return

        def progress(state):
            self.stdout.write(
                f"  {state.label}: {state.rotated}/{state.total} re-encrypted"
                + (f", {len(state.failed)} failed" if state.failed else "")
            )

        self.stdout.write(f"Re-encrypting secrets under key {current} …")
        report = vault_rotate(batch_size=batch_size, progress=progress)
        for model in report.models:
            for failure in model.failed:
                self.stderr.write(f"  {model.label} {failure}")
        self.stdout.write(f"Done: {report.rotated} re-encrypted, {report.failed} failed.")
        if report.failed:
            raise CommandError(
                f"{report.failed} secret(s) could not be decrypted with the keyring and were "
                "left as they are. Add the missing key(s) back and run the command again."
            )
