from django.apps import AppConfig


class AccountsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "accounts"
    verbose_name = "Operators, clients and audit"

    def ready(self) -> None:
        """Sign-ins, failed sign-ins, sign-outs and passwords reset by email go to the
        audit trail."""
        from allauth.account.signals import password_reset
        from django.contrib.auth import signals

        from accounts.audit import (
            record_login,
            record_login_failed,
            record_logout,
            record_password_reset,
        )

        signals.user_logged_in.connect(record_login, dispatch_uid="audit-login")
        signals.user_login_failed.connect(record_login_failed, dispatch_uid="audit-login-failed")
        signals.user_logged_out.connect(record_logout, dispatch_uid="audit-logout")
        password_reset.connect(record_password_reset, dispatch_uid="audit-password-reset")
