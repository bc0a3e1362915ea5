"""The test suite. With CI=true it uses PostgreSQL and Redis and never skips tests needing them."""

import os

import dj_database_url

from portal.settings.base import *  # noqa: F403
from portal.settings.env import env_bool, env_str
from portal.setup_files import new_keyring_entry

CI = env_bool("CI", False)
SECRET_KEY = "test-secret-key-not-for-production"
DEBUG = False

if env_str("DATABASE_URL"):
    _database_url = env_str("DATABASE_URL")
elif CI:
    _database_url = "postgres://postgres@127.0.0.1:5432/test"
else:
    _database_url = "sqlite://:memory:"
DATABASES = {"default": dj_database_url.parse(_database_url, conn_max_age=0)}

# Each pytest-xdist worker (gw0, gw1, ...) gets its own Redis database, as it gets its own test
# database, so that the job tests' brokers never take each other's tasks.
_XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
_WORKER_NUMBER = int(_XDIST_WORKER[2:]) if _XDIST_WORKER[2:].isdigit() else 0
TEST_REDIS_URL = env_str("TEST_REDIS_URL", f"redis://127.0.0.1:6379/{15 - _WORKER_NUMBER % 8}")
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# A fresh keyring per test run: two keys, so decryption with an older key is exercised.
PORTAL_ENCRYPTION_KEYS = os.environ.get("PORTAL_ENCRYPTION_KEYS") or ",".join(
    [new_keyring_entry(), new_keyring_entry()]
)
PORTAL_ENCRYPTION_KEYS_FILE = ""
PORTAL_SANDBOX_ENABLED = True
# The sandbox and the test servers are on this machine.
PORTAL_ALLOW_PRIVATE_NETWORK = True
PORTAL_BASE_URL = "http://testserver"
ALLOWED_HOSTS = ["*"]
LOGGING["root"]["level"] = "WARNING"  # noqa: F405
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
