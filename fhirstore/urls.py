"""Console URLs of the store (the Data page); joined by bulkops/urls.py into
the "console" namespace."""

from django.urls import path

from fhirstore import data_views

urlpatterns = [
    path("data/", data_views.data_page, name="data"),
    path("data/groups/", data_views.group_save, name="group-save"),
    path("data/groups/<str:group_id>/delete/", data_views.group_delete, name="group-delete"),
    path("data/patients/", data_views.patient_search, name="patient-search"),
    path("data/upload/", data_views.data_upload, name="data-upload"),
    path("data/cohorts/", data_views.cohort_save, name="cohort-save"),
    path("data/cohorts/count/", data_views.cohort_count, name="cohort-count"),
]
