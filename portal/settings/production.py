"""Production: refuses to start without a secret key and an encryption key.

``manage.py check --deploy`` is clean under these settings.
"""

from django.core.exceptions import ImproperlyConfigured

from portal.settings.base import *  # noqa: F403
from portal.settings.base import PORTAL_ENCRYPTION_KEYS, PORTAL_ENCRYPTION_KEYS_FILE, SECRET_KEY
from portal.settings.env import env_bool, env_int, env_str

if not SECRET_KEY:
    raise ImproperlyConfigured(
        "SECRET_KEY is not set. Generate one with "
        "`python -c 'import secrets; print(secrets.token_urlsafe(50))'` and set it in the "
        "environment."
    )
if not PORTAL_ENCRYPTION_KEYS and not PORTAL_ENCRYPTION_KEYS_FILE:
    raise ImproperlyConfigured(
        "No encryption key: set PORTAL_ENCRYPTION_KEYS (or PORTAL_ENCRYPTION_KEYS_FILE) to "
        "'kid:base64key' entries, newest first. `python manage.py vault_generate_key` prints one."
    )

DEBUG = False
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
if env_bool("USE_X_FORWARDED_PROTO", True):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
CSRF_TRUSTED_ORIGINS = [PORTAL_BASE_URL]  # noqa: F405
# Production OAuth redirect URIs (the sandbox's, if enabled) must be https.
OAUTH2_PROVIDER = {
    **OAUTH2_PROVIDER,  # noqa: F405
    "ALLOWED_REDIRECT_URI_SCHEMES": ["https"],
    "COMPLIANT_BCP_RFC9700_REDIRECT_URI_SCHEME": True,
}
LOGGING["root"]["level"] = env_str("LOG_LEVEL", "INFO")  # noqa: F405
