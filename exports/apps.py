from django.apps import AppConfig


class ExportsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "exports"
    verbose_name = "Exports"

    def ready(self) -> None:
        """Registers the system check that refuses a host of a multi-host installation
        missing a shared setting (workers and web hosts share exports' state), the
        audit trail's links to the file reads exports records, and the organiser of
        `organizeOutputBy=Patient` exports."""
        import bulkops.multihost  # noqa: F401
        from accounts import audit_links
        from exports.file_audit import audit_columns

        audit_links.register(audit_columns)
        from exports import partitions, patient_blocks

        partitions.ORGANIZERS["Patient"] = partitions.Organizer(
            patient_blocks.ORGANIZED, patient_blocks.partition_slots, patient_blocks.partition_work
        )
