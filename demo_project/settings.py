"""Settings of the taskqueue demo project, read from the environment (and a .env file) with django-environ."""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env")

SECRET_KEY = env("SECRET_KEY", default="demo-insecure-change-me")
DEBUG = env.bool("DEBUG", default=True)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["*"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "taskqueue",
    "demo_project.demo",
    "demo_project.logins",
    "demo_project.payments",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

CSRF_FAILURE_VIEW = "demo_project.demo.access.csrf_failure"
ROOT_URLCONF = "demo_project.urls"
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "DIRS": [BASE_DIR / "demo_project" / "templates"],
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
    ]},
}]
WSGI_APPLICATION = "demo_project.wsgi.application"

# Default: SQLite and the database broker, nothing else to run. DATABASE_URL and
# TASKQUEUE_BROKER_URL switch to PostgreSQL and Redis.
DEMO_DATABASE_PATH = env("DEMO_DATABASE_PATH", default=str(BASE_DIR / "demo.sqlite3"))
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{DEMO_DATABASE_PATH}")}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Several worker processes share the file: WAL, a busy timeout and IMMEDIATE transactions.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"})

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
STATIC_URL = "static/"

TASKQUEUE_BROKER_URL = env("TASKQUEUE_BROKER_URL", default="django://")
TASKQUEUE_KEY_PREFIX = env("TASKQUEUE_KEY_PREFIX", default="taskqueue-demo")
TASKQUEUE_TRACK_STARTED = True  # the pages show STARTED steps

# The demo's stand-ins for the outside world.
DEMO_RISK_API_URL = env("DEMO_RISK_API_URL", default="http://127.0.0.1:8000/risk-api/score")
DEMO_RISK_API_TIMEOUT = env.float("DEMO_RISK_API_TIMEOUT", default=2.0)
DEMO_SCORING_SECONDS = env.float("DEMO_SCORING_SECONDS", default=3.0)
