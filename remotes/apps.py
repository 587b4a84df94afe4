from django.apps import AppConfig


class RemotesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "remotes"
    verbose_name = "Remote Bulk Data servers"

    def ready(self) -> None:
        from exports.job_panels import register
        from remotes.job_panel import remote_panel

        register(remote_panel)
