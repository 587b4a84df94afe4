from django.apps import AppConfig


class RemotesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "remotes"
    verbose_name = "Remote Bulk Data servers"

    def ready(self) -> None:
        from exports.console_hooks import register_job_labels, register_panel, register_sources
        from remotes.job_panel import remote_job_labels, remote_panel, remote_sources

        register_panel(remote_panel)
        register_sources(remote_sources)
        register_job_labels(remote_job_labels)
