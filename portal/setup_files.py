"""First-run generation of the demo's secret files, readable by their owner only."""

import base64
import contextlib
import os
import secrets
from pathlib import Path


def _write_private(path: Path, content: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # O_EXCL: two processes starting at once never overwrite each other's key.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(content)


def ensure_secret_key_file(path: Path) -> str:
    if not path.exists():
        with contextlib.suppress(FileExistsError):
            _write_private(path, secrets.token_urlsafe(50) + "\n")
    return path.read_text().strip()


def new_keyring_entry() -> str:
    """A fresh ``kid:base64key`` entry: a 256-bit AES key with a random key id."""
    key_id = "k" + secrets.token_hex(4)
    return f"{key_id}:{base64.b64encode(secrets.token_bytes(32)).decode()}"


def ensure_dev_keyring_file(path: Path) -> Path:
    if not path.exists():
        with contextlib.suppress(FileExistsError):
            _write_private(path, new_keyring_entry() + "\n")
    return path
