from django.apps import AppConfig


class RemotesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "remotes"
    verbose_name = "Remote Bulk Data servers"
