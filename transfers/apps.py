from __future__ import annotations

from django.apps import AppConfig


class TransfersConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "transfers"
    verbose_name = "Deliveries to Bulk Submit receivers and copies between servers"

    def ready(self) -> None:
        from exports.finish_hooks import on_export_finished
        from transfers.services import export_finished

        on_export_finished(export_finished)
