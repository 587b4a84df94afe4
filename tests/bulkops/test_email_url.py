"""BULKOPS_EMAIL_URL parsing: each scheme to Django's EMAIL_* settings; mistakes stop
start-up with a message that never repeats the password."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from bulkops.email_url import EmailConfig, parse_email_url

SMTP = "django.core.mail.backends.smtp.EmailBackend"


def test_empty_sends_no_mail():
    config = parse_email_url("")
    assert config.backend == "django.core.mail.backends.dummy.EmailBackend"
    assert config.sends_mail is False


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "smtp://mailer:s3cret@mail.example.org:2525",
            EmailConfig(SMTP, "mail.example.org", 2525, "mailer", "s3cret"),
        ),
        (
            "smtp://mailer%40example.org:p%40ss%3Aword@mail.example.org?tls=true",
            EmailConfig(SMTP, "mail.example.org", 587, "mailer@example.org", "p@ss:word", True),
        ),
        ("smtp://relay.internal", EmailConfig(SMTP, "relay.internal", 25)),
        (
            "smtp+ssl://u:p@mail.example.org",
            EmailConfig(SMTP, "mail.example.org", 465, "u", "p", use_ssl=True),
        ),
        (
            "smtp://mail.example.org:25?tls=false",
            EmailConfig(SMTP, "mail.example.org", 25),
        ),
        ("console://", EmailConfig("django.core.mail.backends.console.EmailBackend")),
        (
            "file:///var/mail/bulkops",
            EmailConfig(
                "django.core.mail.backends.filebased.EmailBackend", file_path="/var/mail/bulkops"
            ),
        ),
    ],
)
def test_each_scheme_becomes_django_email_settings(url, expected):
    config = parse_email_url(url)
    assert config == expected
    assert config.sends_mail is True


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("smtps://u:s3cret@mail.example.org", "unknown scheme 'smtps'"),
        ("mail.example.org", "unknown scheme ''"),
        ("smtp://u:s3cret@:25", "needs a host"),
        ("smtp://u:s3cret@mail.example.org:99999", "port"),
        ("smtp://u:s3cret@mail.example.org?tls=maybe", "tls option must be true or false"),
        ("smtp://u:s3cret@mail.example.org?starttls=1", "unknown option starttls"),
        ("smtp+ssl://u:s3cret@mail.example.org?tls=true", "TLS already"),
        ("file://relative/folder", "absolute folder"),
    ],
)
def test_mistakes_stop_start_up_without_repeating_the_password(url, message):
    with pytest.raises(ImproperlyConfigured, match="BULKOPS_EMAIL_URL") as raised:
        parse_email_url(url)
    assert message in str(raised.value)
    assert "s3cret" not in str(raised.value)
