from django.apps import AppConfig


class FhirStoreConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "fhirstore"
    verbose_name = "FHIR resource store"
