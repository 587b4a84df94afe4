from django.apps import AppConfig


class FhirStoreConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "fhirstore"
    verbose_name = "FHIR resource store"

    def ready(self) -> None:
        from accounts import store_directory
        from fhirstore.reads import existing_group_ids, live_counts_by_type

        store_directory.register(
            store_directory.StoreLookups(
                existing_group_ids=existing_group_ids,
                type_counts=lambda: {
                    row["resource_type"]: row["n"] for row in live_counts_by_type()
                },
            )
        )
