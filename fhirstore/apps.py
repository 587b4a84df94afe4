from django.apps import AppConfig


class FhirStoreConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "fhirstore"
    verbose_name = "FHIR resource store"

    def ready(self) -> None:
        from accounts import group_directory
        from fhirstore.reads import existing_group_ids

        group_directory.register(existing_group_ids)
