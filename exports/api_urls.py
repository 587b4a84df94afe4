from django.urls import path

import exports.fhir_urls  # noqa: F401 - registers the fhir_id path converter
from exports import api

urlpatterns = [
    path("exports/", api.JobListApi.as_view(), name="job-list"),
    path("exports/launch", api.JobLaunchApi.as_view(), name="job-launch"),
    path("exports/<uuid:job_id>", api.JobDetailApi.as_view(), name="job-detail"),
    path("exports/<uuid:job_id>/delete", api.JobDeleteApi.as_view(), name="job-delete"),
    path("exports/<uuid:job_id>/cancel", api.JobCancelApi.as_view(), name="job-cancel"),
    path("exports/<uuid:job_id>/files/", api.FileListApi.as_view(), name="file-list"),
    path("files/<uuid:file_id>/preview", api.FilePreviewApi.as_view(), name="file-preview"),
    path("groups/", api.GroupListApi.as_view(), name="group-list"),
    path("groups/create", api.GroupCreateApi.as_view(), name="group-create"),
    path("groups/<fhir_id:group_id>", api.GroupDetailApi.as_view(), name="group-detail"),
    path("groups/<fhir_id:group_id>/update", api.GroupUpdateApi.as_view(), name="group-update"),
    path("groups/<fhir_id:group_id>/delete", api.GroupDeleteApi.as_view(), name="group-delete"),
    path("inventory/", api.InventoryApi.as_view(), name="inventory"),
]
