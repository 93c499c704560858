"""Settings for every environment, read from the process environment (and `.env` when present).

Safe by default: DEBUG is off unless set, and without DEBUG the process refuses to start without a
SECRET_KEY. See `.env.example` for every variable.
"""

from datetime import timedelta
from pathlib import Path

import django_stubs_ext
import environ
from django.core.exceptions import ImproperlyConfigured

from kellyos.embedded_postgres import embedded_database

# Lets admin and other generic classes be subscripted for type checking (ModelAdmin[Account]).
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
if (BASE_DIR / ".env").is_file():
    env.read_env(str(BASE_DIR / ".env"))

DEBUG = env.bool("DEBUG", default=False)

SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Production (DEBUG off) needs a long random SECRET_KEY in the "
            "environment, "
            "e.g. `export SECRET_KEY=$(python -c 'import secrets; print(secrets.token_urlsafe(50))')`. "
            "For local development set DEBUG=true instead."
        )
    SECRET_KEY = "insecure-development-key-only-used-when-DEBUG-is-on"  # noqa: S105

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "kellyos",
    "ledger",
    "customers",
    "invoices",
    "pos",
    "mpesa",
]

MIDDLEWARE = [
    "kellyos.logging.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "kellyos.urls"
WSGI_APPLICATION = "kellyos.wsgi.application"
ASGI_APPLICATION = "kellyos.asgi.application"

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
    },
]

# Database: DATABASE_URL when set; otherwise an embedded PostgreSQL under var/ (kellyos/embedded_postgres.py).
if env.str("DATABASE_URL", default=""):
    DATABASES = {"default": env.db("DATABASE_URL")}
else:
    DATABASES = {
        "default": embedded_database(
            name=env.str("EMBEDDED_DATABASE_NAME", default="kellyos"),
            var_dir=VAR_DIR,
            engine=env.str("EMBEDDED_POSTGRES", default="auto"),
        )
    }
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=0)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASES["default"]["ATOMIC_REQUESTS"] = False  # each business operation owns its transaction
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Connection pooling (deploy/README.md) ---------------------------------------------------------
# DATABASE_POOLING=transaction says DATABASE_URL is a PgBouncer in transaction mode: each transaction
# may run on a different server connection, so nothing this process does may outlive a transaction.
DATABASE_POOLING = env.str("DATABASE_POOLING", default="none")
if DATABASE_POOLING not in {"none", "transaction"}:
    raise ImproperlyConfigured(f"DATABASE_POOLING must be none or transaction, not {DATABASE_POOLING!r}.")
# LISTEN belongs to one server session, so live updates listen on a direct connection to PostgreSQL
# (host, port, user, password; the database defaults to the one the application's connection is in).
EVENTS_DATABASE = env.db("EVENTS_DATABASE_URL") if env.str("EVENTS_DATABASE_URL", default="") else None
if DATABASE_POOLING == "transaction":
    # A server-side cursor opened outside a transaction is WITH HOLD, and its next rows would be asked
    # of whichever server connection PgBouncer hands out next.
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
    if EVENTS_DATABASE is None:
        raise ImproperlyConfigured(
            "DATABASE_POOLING=transaction needs EVENTS_DATABASE_URL, a direct connection to PostgreSQL "
            "(not through PgBouncer) for the live updates' LISTEN; through PgBouncer they would hear nothing."
        )

# Parameters travel apart from the statement (server-side binding), so psycopg can prepare what a
# process runs again and again: PostgreSQL then neither parses nor plans it, which was about a third
# of its work per payment (README, Benchmarks). A prepared statement lives on one server connection:
# through PgBouncer in transaction mode that needs PgBouncer 1.21+ with max_prepared_statements set,
# so there they stay off unless DATABASE_PREPARED_STATEMENTS=true says the pooler can follow them.
DATABASE_PREPARED_STATEMENTS = env.bool("DATABASE_PREPARED_STATEMENTS", default=DATABASE_POOLING == "none")
DATABASES["default"].setdefault("OPTIONS", {}).update(
    server_side_binding=True, prepare_threshold=5 if DATABASE_PREPARED_STATEMENTS else None
)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-gb"
TIME_ZONE = env.str("TIME_ZONE", default="Africa/Nairobi")
USE_I18N = True
USE_TZ = True

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/pos/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=VAR_DIR / "static")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PARSER_CLASSES": [
        "kellyos.api.DecimalJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "URL_FORMAT_OVERRIDE": None,  # ?format=csv belongs to the reports, not to DRF's renderer choice
    "DEFAULT_PERMISSION_CLASSES": ["kellyos.api.HasViewPermissions"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "COERCE_DECIMAL_TO_STRING": True,
}

# Security: strict unless DEBUG. Behind a TLS-terminating proxy set SECURE_PROXY_SSL_HEADER_ENABLED.
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SESSION_COOKIE_HTTPONLY = True
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_HSTS_SECONDS = 0 if DEBUG else env.int("SECURE_HSTS_SECONDS", default=31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SECURE_REDIRECT_EXEMPT = [r"^health$"]  # load balancers probe over plain HTTP
if env.bool("SECURE_PROXY_SSL_HEADER_ENABLED", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "kellyos.logging.JsonFormatter"},
    },
    # The webhook secret is part of the callback path; it must not reach log files.
    "filters": {"redact_webhook_token": {"()": "kellyos.logging.RedactWebhookToken"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            # JSON lines (with request id and receipt number) for log collectors; plain for people.
            "formatter": env.str("LOG_FORMAT", default="plain" if DEBUG else "json"),
            "filters": ["redact_webhook_token"],
        }
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}

# Live updates: how long one event stream stays open before the browser reconnects (and resumes).
EVENTS_STREAM_SECONDS = env.int("EVENTS_STREAM_SECONDS", default=300)
# Threads per server process: deploy/gunicorn.conf.py's post_fork sets GUNICORN_THREADS to the real
# number. What may hold one for seconds is limited below (kellyos.slots); `check --deploy` warns when
# the limits leave fewer than a quarter of them for Safaricom, who does not call again.
SERVER_THREADS = env.int("GUNICORN_THREADS", default=8)
# Live-update streams one server process holds at once. Default: half of its threads.
EVENTS_STREAMS_PER_PROCESS = env.int("EVENTS_STREAMS_PER_PROCESS", default=max(1, SERVER_THREADS // 2))
# Calls to Daraja one server process waits on at once (a cashier's prompt, an accountant's refund or
# status question); past it they are refused at once, nothing sent. Default: a quarter of its threads.
MPESA_CALLS_PER_PROCESS = env.int("MPESA_CALLS_PER_PROCESS", default=max(1, SERVER_THREADS // 4))
# Bearer token the monitoring system sends to GET /metrics; without one, /metrics does not exist.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")

# Receivables: how far back an invoice may be dated (statements already sent would change).
INVOICE_MAX_BACKDATE_DAYS = env.int("INVOICE_MAX_BACKDATE_DAYS", default=60)

# M-Pesa (Daraja). Used by the mpesa app; see .env.example for what each one means.
MPESA_ENV = env.str("MPESA_ENV", default="sandbox")
if MPESA_ENV not in {"sandbox", "production"}:
    raise ImproperlyConfigured(f"MPESA_ENV must be sandbox or production, not {MPESA_ENV!r}.")
MPESA_API_BASE = env.str(
    "MPESA_API_BASE",
    default="https://api.safaricom.co.ke" if MPESA_ENV == "production" else "https://sandbox.safaricom.co.ke",
)
MPESA_CONSUMER_KEY = env.str("MPESA_CONSUMER_KEY", default="")
MPESA_CONSUMER_SECRET = env.str("MPESA_CONSUMER_SECRET", default="")
MPESA_SHORTCODE = env.str("MPESA_SHORTCODE", default="600000")
MPESA_PASSKEY = env.str("MPESA_PASSKEY", default="")
MPESA_C2B_VERSION = env.str("MPESA_C2B_VERSION", default="v2")
MPESA_C2B_RESPONSE_TYPE = env.str("MPESA_C2B_RESPONSE_TYPE", default="Completed")
if MPESA_C2B_RESPONSE_TYPE not in {"Completed", "Cancelled"} or MPESA_C2B_VERSION not in {"v1", "v2"}:
    raise ImproperlyConfigured(
        "MPESA_C2B_RESPONSE_TYPE must be Completed or Cancelled, MPESA_C2B_VERSION v1 or v2."
    )
MPESA_CALLBACK_BASE_URL = env.str("MPESA_CALLBACK_BASE_URL", default="http://127.0.0.1:8000" if DEBUG else "")
MPESA_WEBHOOK_TOKEN = env.str(
    "MPESA_WEBHOOK_TOKEN", default="local-development-webhook-token" if DEBUG else ""
)
_SAFARICOM_CALLBACK_IPS = [
    "196.201.214.200", "196.201.214.206", "196.201.213.114", "196.201.214.207",
    "196.201.214.208", "196.201.213.44", "196.201.212.127", "196.201.212.138",
    "196.201.212.129", "196.201.212.136", "196.201.212.74", "196.201.212.69",
]  # fmt: skip
# In development the fake Daraja and `mpesa_simulate --direct` call from this machine.
MPESA_ALLOWED_IPS = env.list(
    "MPESA_ALLOWED_IPS", default=_SAFARICOM_CALLBACK_IPS + (["127.0.0.1", "::1"] if DEBUG else [])
)
MPESA_TRUSTED_PROXIES = env.list("MPESA_TRUSTED_PROXIES", default=[])
MPESA_MAX_TRANSACTION = env.str("MPESA_MAX_TRANSACTION", default="250000.00")
MPESA_DAILY_CUSTOMER_LIMIT = env.str("MPESA_DAILY_CUSTOMER_LIMIT", default="500000.00")
MPESA_REJECT_UNKNOWN_ACCOUNTS = env.bool("MPESA_REJECT_UNKNOWN_ACCOUNTS", default=True)
MPESA_WEBHOOK_MAX_BODY = env.int("MPESA_WEBHOOK_MAX_BODY", default=16384)
MPESA_HTTP_TIMEOUT = env.float("MPESA_HTTP_TIMEOUT", default=10.0)
MPESA_INITIATOR_NAME = env.str("MPESA_INITIATOR_NAME", default="")
MPESA_INITIATOR_PASSWORD = env.str("MPESA_INITIATOR_PASSWORD", default="")
MPESA_CERTIFICATE_PATH = env.str("MPESA_CERTIFICATE_PATH", default="")

# --- Hostile input: API schema and docs, login throttling, Content-Security-Policy --------------
# Kept in one block so the hardening reads as a whole; see README "Security".
INSTALLED_APPS += ["drf_spectacular", "drf_spectacular_sidecar", "axes"]
# Right after SecurityMiddleware, so even an error page carries the policy.
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1,
    "kellyos.security.ContentSecurityPolicyMiddleware",
)
MIDDLEWARE.append("axes.middleware.AxesMiddleware")  # axes wants to be last: it answers locked-out logins

# OpenAPI 3 schema at /api/schema/, Swagger UI at /api/docs/ (files from the sidecar, no CDN). Both are
# for staff: the schema describes every endpoint, including the webhooks.
REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"] = "drf_spectacular.openapi.AutoSchema"
SPECTACULAR_SETTINGS = {
    "TITLE": "Kelly OS API",
    "DESCRIPTION": "Receivables, till sales and M-Pesa callbacks. Amounts are strings with two decimals.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAdminUser"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "kellyos.api.schema_add_refusals",
    ],
}

# Login throttling (django-axes): after AXES_FAILURE_LIMIT failed logins for one user name from one
# address, that pair is refused (429) for AXES_COOLOFF_MINUTES, at /admin/login/ and /accounts/login/
# alike. Locking the pair, not the name alone, keeps an attacker from locking a cashier out from
# elsewhere. `manage.py axes_reset` lifts every lock.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=30))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# The client address is the direct peer unless AXES_PROXY_COUNT says how many of our own proxies
# stand in front; otherwise anyone could pick their address with an X-Forwarded-For header.
AXES_IPWARE_PROXY_COUNT = env.int("AXES_PROXY_COUNT", default=0)
AXES_IPWARE_META_PRECEDENCE_ORDER = (
    ["HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"] if AXES_IPWARE_PROXY_COUNT else ["REMOTE_ADDR"]
)

# Content-Security-Policy (kellyos.security). Scripts only from our own origin or carrying this
# request's nonce. Styles may be inline: the till, statement and admin pages use <style> blocks and
# style attributes, and CSS cannot run code. Nothing may frame us, forms post only to us.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'nonce-{nonce}'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
