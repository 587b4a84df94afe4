"""BULKOPS_EMAIL_URL: how bulkops sends mail, as one URL (like DATABASE_URL).

    smtp://user:password@host:587?tls=true   SMTP, STARTTLS when tls=true (port 25, or 587)
    smtp+ssl://user:password@host            SMTP over TLS from the first byte (port 465)
    console://                               print each message to stdout (development)
    file:///var/mail/bulkops                 write each message to a file in that folder

User and password are percent-encoded (`@` is `%40`). Empty: bulkops sends no mail, and
the sign-in page offers no password reset by email. Errors never repeat the URL, which
holds a password.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

from bulkops.env import parse_bool

NAME = "BULKOPS_EMAIL_URL"
_BACKENDS = "django.core.mail.backends"


@dataclass(frozen=True)
class EmailConfig:
    """Django's EMAIL_* settings."""

    backend: str = f"{_BACKENDS}.dummy.EmailBackend"
    host: str = "localhost"
    port: int = 25
    user: str = ""
    password: str = ""
    use_tls: bool = False
    use_ssl: bool = False
    file_path: str | None = None

    @property
    def sends_mail(self) -> bool:
        return self.backend != EmailConfig.backend


def parse_email_url(url: str) -> EmailConfig:
    if not url:
        return EmailConfig()
    parts = urlsplit(url)
    if parts.scheme == "console":
        return EmailConfig(backend=f"{_BACKENDS}.console.EmailBackend")
    if parts.scheme == "file":
        if parts.netloc or not parts.path.startswith("/"):
            raise ImproperlyConfigured(f"{NAME}: file:// needs an absolute folder, file:///path")
        return EmailConfig(backend=f"{_BACKENDS}.filebased.EmailBackend", file_path=parts.path)
    if parts.scheme not in ("smtp", "smtp+ssl"):
        raise ImproperlyConfigured(
            f"{NAME}: unknown scheme {parts.scheme!r}; use smtp://, smtp+ssl://, console:// "
            "or file:///path"
        )
    if not parts.hostname:
        raise ImproperlyConfigured(f"{NAME}: {parts.scheme}:// needs a host")
    ssl = parts.scheme == "smtp+ssl"
    tls = _tls_option(parts.query)
    if ssl and tls:
        raise ImproperlyConfigured(f"{NAME}: smtp+ssl:// is TLS already; drop ?tls=true")
    try:
        port = parts.port or (465 if ssl else 587 if tls else 25)
    except ValueError:
        raise ImproperlyConfigured(f"{NAME}: the port is not a number from 0 to 65535") from None
    return EmailConfig(
        backend=f"{_BACKENDS}.smtp.EmailBackend",
        host=parts.hostname,
        port=port,
        user=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        use_tls=tls,
        use_ssl=ssl,
    )


def _tls_option(query: str) -> bool:
    options = dict(parse_qsl(query, keep_blank_values=True))
    unknown = set(options) - {"tls"}
    if unknown:
        raise ImproperlyConfigured(f"{NAME}: unknown option {', '.join(sorted(unknown))}")
    return parse_bool(f"{NAME}'s tls option", options.get("tls", "false"))
