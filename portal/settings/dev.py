"""The demo and local development: SQLite, eager tasks, the sandbox provider on.

A secret key and an encryption key are generated on first run and kept in files under ``var/``
that only the owner can read, so the demo keeps its data readable across runs.
"""

import os

from portal.settings.base import *  # noqa: F403
from portal.settings.base import VAR_DIR
from portal.settings.env import env_bool, env_int, env_str
from portal.setup_files import ensure_dev_keyring_file, ensure_secret_key_file

DEBUG = env_bool("DEBUG", True)
SECRET_KEY = os.environ.get("SECRET_KEY") or ensure_secret_key_file(VAR_DIR / "secret_key")
if not os.environ.get("PORTAL_ENCRYPTION_KEYS") and not os.environ.get(
    "PORTAL_ENCRYPTION_KEYS_FILE"
):
    PORTAL_ENCRYPTION_KEYS_FILE = str(ensure_dev_keyring_file(VAR_DIR / "encryption.keys"))
PORTAL_SANDBOX_ENABLED = env_bool("PORTAL_SANDBOX_ENABLED", True)
# The sandbox provider is on this machine.
PORTAL_ALLOW_PRIVATE_NETWORK = env_bool("PORTAL_ALLOW_PRIVATE_NETWORK", True)
PORT = env_int("PORT", 8000)
PORTAL_BASE_URL = env_str("PORTAL_BASE_URL", f"http://127.0.0.1:{PORT}").rstrip("/")
# Serve static files straight from the source folders, without collectstatic.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
