from __future__ import annotations

from django.apps import AppConfig


class SubmissionsConfig(AppConfig):
    name = "submissions"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from fhirstore.data_sections import register_section
        from submissions.views import submissions_section

        register_section(submissions_section)
