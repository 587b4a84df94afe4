from django.apps import AppConfig


class ExportsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "exports"
    verbose_name = "Exports"

    def ready(self) -> None:
        """Registers the system check that refuses a host of a multi-host installation
        missing a shared setting (workers and web hosts share exports' state), and the
        audit trail's links to the file reads exports records."""
        import bulkops.multihost  # noqa: F401
        from accounts import audit_links
        from exports.file_audit import audit_columns

        audit_links.register(audit_columns)
