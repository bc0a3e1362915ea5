"""Settings shared by every environment. Environment-specific modules import and adjust these."""

from pathlib import Path

import dj_database_url
from csp.constants import NONCE, NONE, SELF

from portal.settings.env import env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(env_str("PORTAL_VAR_DIR", str(BASE_DIR / "var")))

SECRET_KEY = env_str("SECRET_KEY")
DEBUG = False
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost"])

# Where the portal is reachable from browsers: used for session URLs and OAuth redirect URIs.
PORTAL_BASE_URL = env_str("PORTAL_BASE_URL", "http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "django_htmx",
    "template_partials",
    "oauth2_provider",
    # django-ninja's bundled Swagger UI: /api/v1/docs loads it from our static files, no CDN.
    "ninja",
    "accounts",
    "integrations",
    "connect",
    "api",
    "sandbox",
]

MIDDLEWARE = [
    # /healthz/live and /healthz/ready, before host checks and the HTTPS redirect (core/health.py).
    "core.health.HealthCheckMiddleware",
    # A GET that lost its PostgreSQL connection mid-request is retried once (core/db.py).
    "core.db.DatabaseRetryMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "api.middleware.ApiErrorShapeMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"
ASGI_APPLICATION = "portal.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    }
]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'portal.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]

LANGUAGE_CODE = "en"
# The modal's languages: the session's `locale`, else the browser's Accept-Language, picks one.
LANGUAGES = [
    ("en", "English"),
    ("fr", "Français"),
    ("de", "Deutsch"),
    ("es", "Español"),
    ("pt", "Português"),
    ("it", "Italiano"),
    ("ja", "日本語"),
    ("nl", "Nederlands"),
]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    # Redis with short timeouts; while it is unreachable each process counts rate limits on
    # its own instead of failing the request (core/cache.py).
    CACHES = {"default": {"BACKEND": "core.cache.FallbackRedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Celery: Redis is the broker when REDIS_URL is set; otherwise tasks run in-process, eagerly,
# so the embedded default needs nothing but Python and SQLite.
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_BEAT_SCHEDULE: dict = {}
# Workers run jobs in threads: a job mostly waits for a provider, so one process keeps many in
# flight. Each thread keeps its own database connection (DATABASE_CONN_MAX_AGE, portal/celery.py)
# and its own pooled provider connections (core/http.py).
CELERY_WORKER_POOL = "threads"
CELERY_WORKER_CONCURRENCY = env_int("PORTAL_WORKER_CONCURRENCY", 32)

# Admin sign-in through django-allauth: email and password, TOTP, rate-limited.
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "admin:index"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = "username"
ACCOUNT_EMAIL_VERIFICATION = "none"
ACCOUNT_ADAPTER = "accounts.adapter.PortalAccountAdapter"
ACCOUNT_RATE_LIMITS = {
    "login": "30/m/ip",
    "login_failed": "10/m/ip,5/5m/key",
    "reset_password": "20/m/ip,5/m/key",
}
ACCOUNT_LOGOUT_REDIRECT_URL = "account_login"
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
# One 30-second step either way: phones drift, and a code typed as it rolls over still works.
MFA_TOTP_TOLERANCE = 1
MFA_TOTP_ISSUER = env_str("PORTAL_MFA_ISSUER", "Connect portal")

# The keyring of the credential vault: "kid:base64key" entries, newest first (it encrypts,
# all of them decrypt). PORTAL_ENCRYPTION_KEYS_FILE names a file holding the same format.
PORTAL_ENCRYPTION_KEYS = env_str("PORTAL_ENCRYPTION_KEYS")
PORTAL_ENCRYPTION_KEYS_FILE = env_str("PORTAL_ENCRYPTION_KEYS_FILE")

# The built-in sandbox provider (an OAuth2 server and API-key issuer) for the demo and tests.
PORTAL_SANDBOX_ENABLED = env_bool("PORTAL_SANDBOX_ENABLED", False)
# Outbound requests for tenants (proxy, verification, OAuth, webhooks) go only to public
# addresses unless this is on (see integrations/services/outbound.py).
PORTAL_ALLOW_PRIVATE_NETWORK = env_bool("PORTAL_ALLOW_PRIVATE_NETWORK", False)
PORTAL_SANDBOX_TOKEN_LIFETIME = env_int("PORTAL_SANDBOX_TOKEN_LIFETIME", 3600)

OAUTH2_PROVIDER = {
    "PKCE_REQUIRED": True,
    "ALLOWED_REDIRECT_URI_SCHEMES": ["http", "https"],
    "ACCESS_TOKEN_EXPIRE_SECONDS": PORTAL_SANDBOX_TOKEN_LIFETIME,
    "ROTATE_REFRESH_TOKEN": True,
    "REFRESH_TOKEN_GRACE_PERIOD_SECONDS": 0,
    "SCOPES": {"profile": "Read your profile", "items": "Read and write your items"},
    "DEFAULT_SCOPES": ["profile"],
    # RFC 9700 (OAuth 2.0 Security BCP): S256 only, no implicit or password grants, tokens
    # stored hashed, bearer tokens only in headers, `iss` in authorization responses, and a
    # replayed refresh token revokes its whole family.
    "REFRESH_TOKEN_REUSE_PROTECTION": True,
    "COMPLIANT_BCP_RFC9700_IMPLICIT_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PKCE_METHOD": True,
    "COMPLIANT_BCP_RFC9700_PKCE_REQUIRED": True,
    "COMPLIANT_BCP_RFC9700_ACCESS_TOKEN_TRANSPORT": True,
    "COMPLIANT_BCP_RFC9700_AUTHZ_RESPONSE_ISS": True,
    "COMPLIANT_BCP_RFC9700_TOKEN_STORAGE": True,
    "COMPLIANT_BCP_RFC9700_REFRESH_TOKEN": True,
    "COMPLIANT_BCP_RFC9700_REDIRECT_URI_MATCHING": True,
}

# Content-Security-Policy (django-csp) on every response: only our own origin's scripts, styles,
# images and connections; no inline script and no eval anywhere. A page that needs an inline
# <style> marks it with nonce="{{ request.csp_nonce }}". Every page refuses to be framed; the
# modal replaces frame-ancestors with its tenant's allowed origins and lets https images in
# (tenant logos, app icons), see connect/session.py; the demo's host page adds the portal's
# origin (sandbox/host_example.py).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, NONCE],
        # data: for the SVG icons of the admin's and the API docs' stylesheets and MFA QR codes.
        "img-src": [SELF, "data:"],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin-allow-popups"
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# Every other PORTAL_* setting (the API, the proxy, the jobs) is read by core.conf, from this
# module when it sets the name, else from the environment variable, else its stated default.
