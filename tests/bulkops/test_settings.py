"""Settings come from the environment with defaults that need nothing installed."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import ImproperlyConfigured

from bulkops.env import env_bool, env_int, env_time_zone
from tests.processes import manage, process_env

SHOW_SETTINGS = (
    "import json; from django.conf import settings as s; print(json.dumps({"
    "'db': s.DATABASES['default']['ENGINE'], 'db_name': str(s.DATABASES['default']['NAME']),"
    "'broker': s.CELERY_BROKER_URL, 'debug': s.DEBUG, 'key': s.SECRET_KEY,"
    "'storage': str(s.BULKOPS_LOCAL_STORAGE_DIR), 'storage_kind': s.BULKOPS_STORAGE}))"
)


SHOW_FAILURE_LIMITS = (
    "import json; from django.conf import settings as s; print(json.dumps({"
    "'token_client': s.BULKOPS_TOKEN_MAX_FAILURES_PER_CLIENT,"
    "'token_address': s.BULKOPS_TOKEN_MAX_FAILURES_PER_ADDRESS,"
    "'token_window': s.BULKOPS_TOKEN_FAILURE_WINDOW,"
    "'login_failures': s.AXES_FAILURE_LIMIT,"
    "'login_cooloff': s.AXES_COOLOFF_TIME.total_seconds()}))"
)


def settings_in(env: dict[str, str], show: str = SHOW_SETTINGS) -> dict:
    result = manage(env, "shell", "--no-imports", "-c", show)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_defaults_keep_all_state_under_the_var_dir(tmp_path):
    shown = settings_in(process_env(tmp_path))
    assert shown["db"] == "django.db.backends.sqlite3"
    assert shown["db_name"] == str(tmp_path / "bulkops.sqlite3")
    assert shown["broker"] == "filesystem://localhost/"
    assert (tmp_path / "broker" / "queue").is_dir()
    assert shown["storage_kind"] == "local"
    assert shown["storage"] == str(tmp_path / "exports")
    assert shown["debug"] is False


def test_secret_key_is_generated_once_and_kept(tmp_path):
    first = settings_in(process_env(tmp_path))["key"]
    second = settings_in(process_env(tmp_path))["key"]
    assert first == second
    assert len(first) >= 50
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600


def test_environment_overrides_defaults(tmp_path):
    key_file = tmp_path / "key.txt"
    key_file.write_text("from-a-file\n")
    shown = settings_in(
        process_env(
            tmp_path,
            DATABASE_URL="postgres://u:p@db.example:5432/bulk",
            CELERY_BROKER_URL="redis://127.0.0.1:6379/0",
            SECRET_KEY_FILE=str(key_file),
            BULKOPS_DEBUG="1",
        )
    )
    assert shown["db"] == "django.db.backends.postgresql"
    assert shown["db_name"] == "bulk"
    assert shown["broker"] == "redis://127.0.0.1:6379/0"
    assert shown["key"] == "from-a-file"
    assert shown["debug"] is True


def test_failure_limits_come_from_the_environment(tmp_path):
    assert settings_in(process_env(tmp_path), SHOW_FAILURE_LIMITS) == {
        "token_client": 10,
        "token_address": 30,
        "token_window": 300,
        "login_failures": 5,
        "login_cooloff": 900,
    }
    env = process_env(
        tmp_path,
        BULKOPS_TOKEN_MAX_FAILURES_PER_CLIENT="4",
        BULKOPS_TOKEN_MAX_FAILURES_PER_ADDRESS="12",
        BULKOPS_TOKEN_FAILURE_WINDOW="60",
        BULKOPS_LOGIN_MAX_FAILURES="8",
        BULKOPS_LOGIN_COOLOFF_MINUTES="45",
    )
    assert settings_in(env, SHOW_FAILURE_LIMITS) == {
        "token_client": 4,
        "token_address": 12,
        "token_window": 60,
        "login_failures": 8,
        "login_cooloff": 2700,
    }


def test_a_misspelt_boolean_stops_start_up(tmp_path):
    result = manage(process_env(tmp_path, BULKOPS_DEBUG="ture"), "check")
    assert result.returncode != 0
    assert "BULKOPS_DEBUG must be true or false" in result.stderr


def test_a_notification_webhook_without_a_secret_stops_start_up(tmp_path):
    """An unsigned webhook could be forged by anyone who learns its URL."""
    env = process_env(tmp_path, BULKOPS_NOTIFY_WEBHOOK_URL="https://hooks.example.org/b")
    result = manage(env, "check")
    assert result.returncode != 0
    assert "BULKOPS_NOTIFY_WEBHOOK_URL needs BULKOPS_NOTIFY_WEBHOOK_SECRET" in result.stderr


def test_env_helpers_parse_strictly(monkeypatch):
    monkeypatch.setenv("X_FLAG", "off")
    assert env_bool("X_FLAG", True) is False
    monkeypatch.setenv("X_FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured):
        env_bool("X_FLAG", True)
    monkeypatch.setenv("X_NUM", "-1")
    with pytest.raises(ImproperlyConfigured, match="at least 0"):
        env_int("X_NUM", 3)
    monkeypatch.setenv("X_NUM", "seven")
    with pytest.raises(ImproperlyConfigured, match="whole number"):
        env_int("X_NUM", 3)
    monkeypatch.setenv("X_ZONE", "America/Sao_Paulo")
    assert env_time_zone("X_ZONE", "UTC") == "America/Sao_Paulo"
    for not_a_zone in ("Mars/Olympus_Mons", "localtime", "../../etc/passwd", "+02:00"):
        monkeypatch.setenv("X_ZONE", not_a_zone)
        with pytest.raises(ImproperlyConfigured, match="X_ZONE must be an IANA time zone name"):
            env_time_zone("X_ZONE", "UTC")


SHOW_EMAIL = (
    "import json; from django.conf import settings as s; print(json.dumps({"
    "'backend': s.EMAIL_BACKEND, 'host': s.EMAIL_HOST, 'port': s.EMAIL_PORT,"
    "'user': s.EMAIL_HOST_USER, 'password': s.EMAIL_HOST_PASSWORD, 'tls': s.EMAIL_USE_TLS,"
    "'from': s.DEFAULT_FROM_EMAIL, 'reset': s.BULKOPS_PASSWORD_RESET_BY_EMAIL,"
    "'names': [n for n in dir(s) if 'EMAIL_URL' in n]}))"
)


def test_email_url_and_sender_reach_django_mail_settings(tmp_path):
    unset = settings_in(process_env(tmp_path), SHOW_EMAIL)
    assert unset["backend"] == "django.core.mail.backends.dummy.EmailBackend"
    assert unset["reset"] is False
    shown = settings_in(
        process_env(
            tmp_path,
            BULKOPS_EMAIL_URL="smtp://mailer%40example.org:s3cret@mail.example.org?tls=true",
            BULKOPS_EMAIL_FROM="bulkops@example.org",
        ),
        SHOW_EMAIL,
    )
    assert shown == {
        "backend": "django.core.mail.backends.smtp.EmailBackend",
        "host": "mail.example.org",
        "port": 587,
        "user": "mailer@example.org",
        "password": "s3cret",
        "tls": True,
        "from": "bulkops@example.org",
        "reset": True,
        "names": [],  # the URL, password and all, is no setting that debug pages would show
    }


def test_email_url_can_come_from_a_file(tmp_path):
    secret = tmp_path / "email-url"
    secret.write_text("smtp+ssl://u:s3cret@mail.example.org\n")
    shown = settings_in(process_env(tmp_path, BULKOPS_EMAIL_URL_FILE=str(secret)), SHOW_EMAIL)
    assert (shown["host"], shown["port"], shown["password"]) == ("mail.example.org", 465, "s3cret")


def test_a_bad_email_url_stops_start_up_without_showing_its_password(tmp_path):
    result = manage(process_env(tmp_path, BULKOPS_EMAIL_URL="smtps://u:s3cret@mail"), "check")
    assert result.returncode != 0
    assert "BULKOPS_EMAIL_URL: unknown scheme 'smtps'" in result.stderr
    assert "s3cret" not in result.stderr + result.stdout
