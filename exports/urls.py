"""Console URLs for exports; joined by bulkops/urls.py into the "console" namespace."""

from django.urls import path

from exports import file_views, views

urlpatterns = [
    path("exports/", views.job_list, name="job-list"),
    path("exports/new/", views.job_launch, name="job-launch"),
    path("exports/new/lint/", views.job_lint, name="job-lint"),
    path("exports/<uuid:job_id>/", views.job_detail, name="job-detail"),
    path("exports/<uuid:job_id>/progress/", views.job_progress, name="job-progress"),
    path("exports/<uuid:job_id>/delete/", views.job_delete, name="job-delete"),
    path("exports/<uuid:job_id>/rerun/", views.job_rerun, name="job-rerun"),
    path("files/<uuid:file_id>/", file_views.file_preview, name="file-preview"),
    path("files/<uuid:file_id>/page.csv", file_views.file_preview_csv, name="file-preview-csv"),
    path("files/<uuid:file_id>/download/", file_views.file_download, name="file-download"),
]
