from django.apps import AppConfig


class SchedulesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "schedules"
    verbose_name = "Scheduled exports and notifications"

    def ready(self) -> None:
        from exports.finish_hooks import on_export_finished
        from schedules.notify import queue_export_notifications

        on_export_finished(queue_export_notifications)
