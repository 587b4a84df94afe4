from django.urls import path

from exports import api

urlpatterns = [
    path("exports/", api.JobListApi.as_view(), name="job-list"),
    path("exports/launch", api.JobLaunchApi.as_view(), name="job-launch"),
    path("exports/<uuid:job_id>", api.JobDetailApi.as_view(), name="job-detail"),
    path("exports/<uuid:job_id>/delete", api.JobDeleteApi.as_view(), name="job-delete"),
    path("exports/<uuid:job_id>/cancel", api.JobCancelApi.as_view(), name="job-cancel"),
    path("exports/<uuid:job_id>/files/", api.FileListApi.as_view(), name="file-list"),
    path("files/<uuid:file_id>/preview", api.FilePreviewApi.as_view(), name="file-preview"),
]
