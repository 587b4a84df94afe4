"""bulkops settings: every value from the environment, with defaults that run locally.

See README.md ("Configuration") for the table of variables.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from bulkops.cache_url import cache_from_url
from bulkops.email_url import parse_email_url
from bulkops.env import (
    env_bool,
    env_choice,
    env_int,
    env_networks,
    env_secret,
    env_str,
    env_time_zone,
    persistent_secret,
)
from bulkops.output_storages import parse_output_storages

PACKAGE_DIR = Path(__file__).resolve().parent
BASE_DIR = PACKAGE_DIR.parent
# A checkout keeps templates/ and static/ at its top and its state in its own var/. A
# wheel carries templates and static files inside this package (pyproject.toml), and an
# installed bulkops, whose BASE_DIR is site-packages, keeps its state in ./var.
INSTALLED = (PACKAGE_DIR / "templates").is_dir()
FILES_DIR = PACKAGE_DIR if INSTALLED else BASE_DIR
_DEFAULT_VAR_DIR = Path("var").resolve() if INSTALLED else BASE_DIR / "var"
VAR_DIR = Path(env_str("BULKOPS_VAR_DIR", str(_DEFAULT_VAR_DIR))).resolve()
VAR_DIR.mkdir(parents=True, exist_ok=True)

_GIVEN_SECRET_KEY = env_secret("SECRET_KEY")
SECRET_KEY = _GIVEN_SECRET_KEY or persistent_secret(VAR_DIR / "secret_key")
# A generated key is this host's alone: a multi-host installation must give one
# (bulkops/multihost.py refuses to start without it).
BULKOPS_SECRET_KEY_GENERATED = not _GIVEN_SECRET_KEY
# Fernet keys for secrets stored encrypted (remotes.crypto), newest first; empty: derived
# from SECRET_KEY.
BULKOPS_ENCRYPTION_KEYS = [k for k in (env_secret("BULKOPS_ENCRYPTION_KEYS") or "").split(",") if k]
DEBUG = env_bool("BULKOPS_DEBUG", False)
ALLOWED_HOSTS = env_str("BULKOPS_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1],testserver").split(",")
CSRF_TRUSTED_ORIGINS = [o for o in env_str("BULKOPS_CSRF_TRUSTED_ORIGINS", "").split(",") if o]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "allauth",
    "allauth.account",
    # Before accounts: axes' failed-sign-in receiver then runs first and marks a
    # locked-out request, which the audit trail's receiver records as such.
    "axes",
    "django_htmx",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "accounts",
    "fhirstore",
    "exports",
    "remotes",
    "transfers",
    "schedules",
    "console",
    "submissions",
]

MIDDLEWARE = [
    "bulkops.forwarded.ForwardedHeadersMiddleware",  # first: what follows reads its result
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "accounts.time_zones.OperatorTimeZoneMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "bulkops.unavailable.DatabaseUnavailableMiddleware",
    "exports.missing_storage.MissingStorageMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "bulkops.urls"
WSGI_APPLICATION = "bulkops.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [FILES_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Database: SQLite under var/ unless DATABASE_URL says otherwise.
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'bulkops.sqlite3'}"),
        # Persistent connections: opening one per request dominated token latency on
        # PostgreSQL (docs/performance.md).
        conn_max_age=env_int("BULKOPS_DB_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web app read while a worker writes; the timeout rides out short locks.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    # First: refuses a locked-out sign-in before any password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]

# django-allauth: operators log in by username; nobody signs themselves up.
ACCOUNT_ADAPTER = "accounts.adapters.ClosedSignupAdapter"
ACCOUNT_LOGIN_METHODS = {"username"}
ACCOUNT_SIGNUP_FIELDS = ["username*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "none"
ACCOUNT_LOGOUT_ON_GET = False
ACCOUNT_SESSION_REMEMBER = None
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "console:dashboard"
ACCOUNT_LOGOUT_REDIRECT_URL = "account_login"
ACCOUNT_FORMS = {"login": "accounts.forms.ConsoleLoginForm"}
# Failed sign-ins are throttled by django-axes below. allauth's own limit on them counts
# per username too, so anyone could lock an operator out by naming them, and in each
# process's memory; it is off. Its other limits count per address or per signed-in user
# and stay.
ACCOUNT_RATE_LIMITS = {"login_failed": None}

# Sign-in lock-outs (accounts/lockout.py): failures counted in the database, shared by
# every process, per username and address together; a stranger's failures lock only the
# stranger's address out of that account. Attempts made while locked out restart the
# cool-off; a successful sign-in clears the count.
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_FAILURE_LIMIT = env_int("BULKOPS_LOGIN_MAX_FAILURES", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("BULKOPS_LOGIN_COOLOFF_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_USERNAME_CALLABLE = "accounts.lockout.attempted_username"
AXES_CLIENT_IP_CALLABLE = "accounts.audit.client_ip"
AXES_LOCKOUT_CALLABLE = "accounts.lockout.lockout_response"
# Sign-ins and failures are in the audit trail already: axes keeps only its counts.
AXES_DISABLE_ACCESS_LOG = True
# Masked in what axes logs and stores with a failed attempt (the password always is).
AXES_SENSITIVE_PARAMETERS = ["username", "login", "ip_address", "csrfmiddlewaretoken"]
# No start-up banner: logs go to stdout, where management commands print their output.
AXES_VERBOSE = False

LANGUAGE_CODE = "en-us"
# Times are stored in UTC; the console shows them in each operator's zone, by default
# this one (accounts/time_zones.py).
TIME_ZONE = env_time_zone("BULKOPS_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STATICFILES_DIRS = [FILES_DIR / "static"]
# Hashed, compressed files once `collectstatic` has run (make run does); before that
# (tests, a fresh checkout) WhiteNoise serves the source files through the finders.
_STATIC_COLLECTED = (STATIC_ROOT / "staticfiles.json").exists()
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if _STATIC_COLLECTED
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = not _STATIC_COLLECTED

# Security headers and cookies (docs/security.md). BULKOPS_TLS=true when people and
# clients reach bulkops over https (BULKOPS_BEHIND_TLS_PROXY implies it): cookies are
# then Secure, plain http is redirected (but /healthz, for load balancers) and HSTS is
# sent. Both cookies are HttpOnly: htmx sends the CSRF token from the page's hx-headers.
# X-Forwarded-Proto and -For count only from the proxy's addresses (bulkops/forwarded.py).
BULKOPS_BEHIND_TLS_PROXY = env_bool("BULKOPS_BEHIND_TLS_PROXY", False)
BULKOPS_TRUSTED_PROXIES = (
    env_networks("BULKOPS_TRUSTED_PROXIES", "127.0.0.1,::1") if BULKOPS_BEHIND_TLS_PROXY else ()
)
if BULKOPS_BEHIND_TLS_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
BULKOPS_TLS = env_bool("BULKOPS_TLS", False) or BULKOPS_BEHIND_TLS_PROXY
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = SECURE_SSL_REDIRECT = BULKOPS_TLS
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = env_int("BULKOPS_HSTS_SECONDS", 365 * 24 * 3600) if BULKOPS_TLS else 0
SESSION_COOKIE_HTTPONLY = CSRF_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# No inline script anywhere: htmx and Swagger UI load from our static files. Inline
# style attributes stay allowed (the progress bars' widths); <style> elements do not.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "style-src-attr": ["'unsafe-inline'"],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}
# Request bodies (form fields, JSON, a POST $export Parameters body) above this many
# bytes are refused before they are read; uploaded files have their own limit.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("BULKOPS_MAX_BODY_BYTES", 2_621_440, minimum=1024)
DATA_UPLOAD_MAX_NUMBER_FIELDS = 1000

# Public base URL used to build absolute links (status URLs, token endpoint). Empty means
# "derive from the request", which is right behind a proxy that sets Host correctly.
BULKOPS_BASE_URL = env_str("BULKOPS_BASE_URL", "").rstrip("/")

# Outgoing mail (README "Forgotten passwords"): only password reset by email sends any.
# Without BULKOPS_EMAIL_URL nothing is sent and the sign-in page offers no reset link. The
# URL holds a password, so it is not kept as a setting of its own (debug pages show those).
_email = parse_email_url(env_secret("BULKOPS_EMAIL_URL") or "")
# Mail goes out: password resets, and export notifications to BULKOPS_NOTIFY_EMAIL.
BULKOPS_SENDS_EMAIL = BULKOPS_PASSWORD_RESET_BY_EMAIL = _email.sends_mail
EMAIL_BACKEND = _email.backend
EMAIL_HOST = _email.host
EMAIL_PORT = _email.port
EMAIL_HOST_USER = _email.user
EMAIL_HOST_PASSWORD = _email.password
EMAIL_USE_TLS = _email.use_tls
EMAIL_USE_SSL = _email.use_ssl
EMAIL_FILE_PATH = _email.file_path
EMAIL_TIMEOUT = 10  # seconds: a dead mail server must not hold the reset page for minutes
DEFAULT_FROM_EMAIL = SERVER_EMAIL = env_str("BULKOPS_EMAIL_FROM", "bulkops@localhost")
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[bulkops] "
# A reset asked for an address no operator has gets the same answer as any other, and
# no mail: bulkops never writes to addresses it does not know.
ACCOUNT_PREVENT_ENUMERATION = True
ACCOUNT_EMAIL_UNKNOWN_ACCOUNTS = False

# SMART Backend Services (README "Backend clients"). Access tokens should live ≤ 300 s
# (spec §7.6); plain-http jwks_uri only for local testing (spec §7.2 wants https).
BULKOPS_ACCESS_TOKEN_LIFETIME = env_int("BULKOPS_ACCESS_TOKEN_LIFETIME", 300, minimum=1)
BULKOPS_ALLOW_HTTP_JWKS = env_bool("BULKOPS_ALLOW_HTTP_JWKS", False)
# Server-side fetches (jwks_uri, remote servers) refuse loopback, private, link-local and
# other non-public addresses (SSRF guard, bulkops/outbound/) unless this says otherwise.
BULKOPS_ALLOW_PRIVATE_FETCH = env_bool("BULKOPS_ALLOW_PRIVATE_FETCH", False)
# The forward proxy those fetches go through, where the network demands one; http_proxy
# and HTTPS_PROXY are never used. Its URL may hold credentials: also read from *_FILE.
BULKOPS_OUTBOUND_PROXY = env_secret("BULKOPS_OUTBOUND_PROXY") or ""
if BULKOPS_OUTBOUND_PROXY and not BULKOPS_OUTBOUND_PROXY.startswith(("http://", "https://")):
    raise ImproperlyConfigured("BULKOPS_OUTBOUND_PROXY must be an http:// or https:// URL")
# Our client of remote Bulk Data servers (exports.bulk_client): the longest wait between
# two status polls, whatever Retry-After asks (one server sent an epoch time: 57 years),
# and how often a poll answered with a transient error (spec §2.2) is tried again.
BULKOPS_REMOTE_MAX_WAIT = env_int("BULKOPS_REMOTE_MAX_WAIT", 300, minimum=1)
BULKOPS_REMOTE_TRANSIENT_RETRIES = env_int("BULKOPS_REMOTE_TRANSIENT_RETRIES", 5, minimum=0)
# Bulk Submit (submissions/fetch.py): the longest wait for any answer or byte from a
# submitter's file server, and the longest a whole file download may take.
BULKOPS_SUBMIT_FETCH_TIMEOUT = env_int("BULKOPS_SUBMIT_FETCH_TIMEOUT", 60, minimum=1)
BULKOPS_SUBMIT_FILE_DEADLINE = env_int("BULKOPS_SUBMIT_FILE_DEADLINE", 3600, minimum=1)
# Client keys: rotate within this many days of adding one (0: no such policy); the
# dashboard lists keys expiring within the warning window (accounts/key_expiry.py).
BULKOPS_CLIENT_KEY_MAX_AGE_DAYS = env_int("BULKOPS_CLIENT_KEY_MAX_AGE_DAYS", 365, minimum=0)
BULKOPS_KEY_EXPIRY_WARNING_DAYS = env_int("BULKOPS_KEY_EXPIRY_WARNING_DAYS", 30, minimum=0)
# Failed token requests within the window, counted per client (only requests its own key
# signed) and per address (all of them); over either limit, 429 (accounts/throttle.py).
BULKOPS_TOKEN_MAX_FAILURES_PER_CLIENT = env_int(
    "BULKOPS_TOKEN_MAX_FAILURES_PER_CLIENT", 10, minimum=1
)
BULKOPS_TOKEN_MAX_FAILURES_PER_ADDRESS = env_int(
    "BULKOPS_TOKEN_MAX_FAILURES_PER_ADDRESS", 30, minimum=1
)
BULKOPS_TOKEN_FAILURE_WINDOW = env_int("BULKOPS_TOKEN_FAILURE_WINDOW", 300, minimum=1)

# Celery: a filesystem broker under var/ needs no server; CELERY_BROKER_URL switches to
# redis:// or amqp:// in production. The host part means nothing to the filesystem
# transport, but without one kombu warns "No hostname was supplied" each time it copies
# the connection to publish, which is every kick-off.
BROKER_DIR = VAR_DIR / "broker"
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://localhost/")
CELERY_BROKER_TRANSPORT_OPTIONS = (
    {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
        "polling_interval": 0.1,
    }
    if CELERY_BROKER_URL.startswith("filesystem")
    else {}
)
if CELERY_BROKER_URL.startswith("filesystem"):
    for folder in ("queue", "control"):
        (BROKER_DIR / folder).mkdir(parents=True, exist_ok=True)
    # The worker's timer thread sleeps this long between checks, and a stopping worker
    # waits for it: at Celery's 1 s, Ctrl-C on `make run` ran past honcho's 5 s grace
    # (bulkops.celery.stop_polling_now has the rest).
    CELERY_WORKER_TIMER_PRECISION = 0.2
CELERY_TASK_IGNORE_RESULT = True
# Results are off: progress lives on our rows. A backend can be set for diagnostics.
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND", "disabled://")
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Celery closes every database connection after each task unless this is set: each
# partition of an export then started a new PostgreSQL backend, 0.6-0.7 s of CPU for a
# 1M-resource export (docs/performance.md). Connections now live by Django's rules
# between tasks (bulkops/celery.py); this only recycles them all every 1,000 tasks.
CELERY_DB_REUSE_MAX = 1000
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = TIME_ZONE
CELERY_IMPORTS = ("bulkops.tasks",)

# Where export files live: local disk under var/, or an S3-compatible bucket
# (README "Storing exports in S3 / IBM COS / MinIO"; credentials from boto3's chain).
BULKOPS_STORAGE = env_choice("BULKOPS_STORAGE", "local", ("local", "s3"))
BULKOPS_LOCAL_STORAGE_DIR = Path(
    env_str("BULKOPS_LOCAL_STORAGE_DIR", str(VAR_DIR / "exports"))
).resolve()
BULKOPS_S3_BUCKET = env_str("BULKOPS_S3_BUCKET", "")
BULKOPS_S3_ENDPOINT_URL = env_str("BULKOPS_S3_ENDPOINT_URL", "")
BULKOPS_S3_REGION = env_str("BULKOPS_S3_REGION", "")
BULKOPS_S3_PREFIX = env_str("BULKOPS_S3_PREFIX", "")
# SigV4 presigned URLs live at most 7 days.
BULKOPS_S3_PRESIGN_SECONDS = env_int("BULKOPS_S3_PRESIGN_SECONDS", 3600, minimum=60)
if BULKOPS_S3_PRESIGN_SECONDS > 7 * 24 * 3600:
    raise ImproperlyConfigured("BULKOPS_S3_PRESIGN_SECONDS must be at most 604800 (7 days)")
# S3 refuses parts under 5 MiB (but the last); tests set the byte size directly.
BULKOPS_S3_PART_SIZE = env_int("BULKOPS_S3_PART_MB", 16, minimum=5) * 1024 * 1024
BULKOPS_S3_ADDRESSING_STYLE = env_choice(
    "BULKOPS_S3_ADDRESSING_STYLE", "auto", ("auto", "path", "virtual")
)
BULKOPS_S3_SSE = env_str("BULKOPS_S3_SSE", "")
if BULKOPS_STORAGE == "s3" and not BULKOPS_S3_BUCKET:
    raise ImproperlyConfigured("BULKOPS_STORAGE=s3 needs BULKOPS_S3_BUCKET")
# More storages an export or a schedule may choose by name (README: "Output storages").
BULKOPS_OUTPUT_STORAGES = parse_output_storages(env_str("BULKOPS_OUTPUT_STORAGES", ""))

# Logging: one stdout handler, text or JSON, ids in `extra` so lines grep by job id.
BULKOPS_LOG_LEVEL = env_str("BULKOPS_LOG_LEVEL", "INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "text": {"()": "bulkops.logs.TextFormatter"},
        "json": {"()": "bulkops.logs.JsonFormatter"},
    },
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "formatter": env_choice("BULKOPS_LOG_FORMAT", "text", ("text", "json")),
        }
    },
    "filters": {"routine_tasks": {"()": "bulkops.logs.RoutineTaskFilter"}},
    "root": {"handlers": ["stdout"], "level": BULKOPS_LOG_LEVEL},
    "loggers": {
        "django.server": {"level": "WARNING"},
        # httpx logs every request's full URL at INFO: a presigned file URL's signature,
        # which works as a credential, would reach the log. The exchange logs of remote
        # exports and server checks record each request with such values redacted.
        "httpx": {"level": "WARNING"},
        # Each run of a CELERY_BEAT_SCHEDULE task is logged at DEBUG, not INFO.
        "celery.beat": {"filters": ["routine_tasks"]},
        "celery.worker.strategy": {"filters": ["routine_tasks"]},
        "celery.app.trace": {"filters": ["routine_tasks"]},
    },
}

# Bulk export behaviour (README "Exports").
BULKOPS_MAX_CONCURRENT_EXPORTS = env_int("BULKOPS_MAX_CONCURRENT_EXPORTS", 3, minimum=1)
BULKOPS_MAX_RESOURCES_PER_FILE = env_int("BULKOPS_MAX_RESOURCES_PER_FILE", 100_000, minimum=1)
# Console uploads (README "Data"): one request at most this many bytes; every file
# streams to a temporary file, never into memory; other fields stay within
# BULKOPS_MAX_BODY_BYTES.
BULKOPS_MAX_UPLOAD_BYTES = env_int("BULKOPS_MAX_UPLOAD_BYTES", 100 * 1024 * 1024, minimum=1)
FILE_UPLOAD_HANDLERS = [
    "fhirstore.uploads.UploadLimitHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]
# The console's NDJSON search reads at most this much of a file per request, for at most
# this long, then offers to keep searching from where it stopped (exports.ndjson_search).
BULKOPS_PREVIEW_SEARCH_BYTES = env_int("BULKOPS_PREVIEW_SEARCH_BYTES", 64 * 1024 * 1024, minimum=1)
BULKOPS_PREVIEW_SEARCH_MS = env_int("BULKOPS_PREVIEW_SEARCH_MS", 2000, minimum=1)
BULKOPS_PARTITION_SIZE = env_int("BULKOPS_PARTITION_SIZE", 50_000, minimum=1)
# Worker processes that take export partitions, all hosts together: a Patient or Group
# export of several partitions makes a multiple of this many (exports.partitions).
BULKOPS_EXPORT_WORKERS = env_int("BULKOPS_EXPORT_WORKERS", 2, minimum=1)
# A kick-off's _since may be this many seconds ahead of the server's clock (client skew).
BULKOPS_SINCE_CLOCK_SKEW = env_int("BULKOPS_SINCE_CLOCK_SKEW", 60, minimum=0)
BULKOPS_EXPORT_RETENTION = env_int("BULKOPS_EXPORT_RETENTION", 24 * 3600, minimum=60)
BULKOPS_RETRY_AFTER = env_int("BULKOPS_RETRY_AFTER", 2, minimum=1)
BULKOPS_POLL_BURST = env_int("BULKOPS_POLL_BURST", 10, minimum=1)
BULKOPS_PARTITION_LEASE = env_int("BULKOPS_PARTITION_LEASE", 300, minimum=5)
# A partition started this many times without finishing fails its job (exports.recovery).
BULKOPS_PARTITION_MAX_ATTEMPTS = env_int("BULKOPS_PARTITION_MAX_ATTEMPTS", 3, minimum=1)
# A server check not finished after this many seconds is ended as an error (its worker died).
BULKOPS_CHECK_TIMEOUT = env_int("BULKOPS_CHECK_TIMEOUT", 900, minimum=60)
BULKOPS_REAPER_INTERVAL = env_int("BULKOPS_REAPER_INTERVAL", 60, minimum=1)
# Beat keeps its schedule in the database (django-celery-beat's DatabaseScheduler, chosen
# by `celery beat -S`): these entries and every scheduled export (schedules app).
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    "expire-exports": {"task": "exports.tasks.expire_exports_task", "schedule": 300.0},
    "reap-stalled-exports": {
        "task": "exports.tasks.reap_stalled_exports_task",
        "schedule": float(BULKOPS_REAPER_INTERVAL),
    },
    "fail-stalled-checks": {"task": "remotes.tasks.fail_stalled_checks_task", "schedule": 300.0},
    "prune-used-assertions": {
        "task": "accounts.tasks.prune_used_assertions_task",
        "schedule": 300.0,
    },
}

# Django's cache, where the operator API's throttles count: each process's own memory,
# or a Redis every web process on every host shares (BULKOPS_CACHE_URL). Its password
# goes into OPTIONS, a key Django's debug pages hide, not into LOCATION.
CACHES = {"default": cache_from_url(env_secret("BULKOPS_CACHE_URL") or "")}

# Notifications (README "Schedules and notifications"): a webhook and/or mail for every
# export that completes or fails and every schedule that misses its time, besides each
# schedule's own destinations. The webhook's body is signed with the secret (HMAC-SHA256);
# a failed delivery is tried again BULKOPS_NOTIFY_RETRIES times, after
# BULKOPS_NOTIFY_RETRY_DELAY seconds, then twice that, and so on.
BULKOPS_NOTIFY_WEBHOOK_URL = env_str("BULKOPS_NOTIFY_WEBHOOK_URL", "")
BULKOPS_NOTIFY_WEBHOOK_SECRET = env_secret("BULKOPS_NOTIFY_WEBHOOK_SECRET") or ""
if BULKOPS_NOTIFY_WEBHOOK_URL and not BULKOPS_NOTIFY_WEBHOOK_SECRET:
    raise ImproperlyConfigured("BULKOPS_NOTIFY_WEBHOOK_URL needs BULKOPS_NOTIFY_WEBHOOK_SECRET")
BULKOPS_NOTIFY_EMAIL = [a for a in env_str("BULKOPS_NOTIFY_EMAIL", "").split(",") if a.strip()]
BULKOPS_NOTIFY_RETRIES = env_int("BULKOPS_NOTIFY_RETRIES", 5, minimum=0)
BULKOPS_NOTIFY_RETRY_DELAY = env_int("BULKOPS_NOTIFY_RETRY_DELAY", 30, minimum=1)

# Operator JSON API (README "Operator API"). Token or session auth (session keeps DRF's
# CSRF check); throttle rates are DRF's "<n>/<second|minute|hour|day>", counted in
# CACHES.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.api_auth.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["accounts.api_auth.RolePermission"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["bulkops.api_parsers.DepthCheckedJsonParser"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "bulkops.api.OperatorAutoSchema",
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env_str("BULKOPS_API_THROTTLE_ANON", "60/minute"),
        "user": env_str("BULKOPS_API_THROTTLE_USER", "1200/minute"),
    },
    "EXCEPTION_HANDLER": "bulkops.api.api_exception_handler",
    # Throttles count REMOTE_ADDR, which bulkops.forwarded has settled; with DRF's
    # default (None) they would key anonymous callers by whatever X-Forwarded-For says.
    "NUM_PROXIES": 0,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "bulkops operator API",
    "DESCRIPTION": "Manage backend clients, groups and exports; read the audit trail.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["accounts.api_auth.RolePermission"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "ClientStatusEnum": "accounts.models.BackendClient.Status",
        "ExportStatusEnum": "exports.models.ExportJob.Status",
        "ExportLevelEnum": "exports.models.ExportJob.Level",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "bulkops.api.add_error_responses",
    ],
}
