"""Console URLs for schedules; joined by bulkops/urls.py into the "console" namespace."""

from django.urls import path

from schedules import views

urlpatterns = [
    path("schedules/", views.schedule_list, name="schedule-list"),
    path("schedules/new/", views.schedule_form, name="schedule-create"),
    path("schedules/<uuid:schedule_id>/", views.schedule_detail, name="schedule-detail"),
    path("schedules/<uuid:schedule_id>/edit/", views.schedule_form, name="schedule-edit"),
    path(
        "schedules/<uuid:schedule_id>/pause/",
        views.schedule_pause,
        {"paused": True},
        name="schedule-pause",
    ),
    path(
        "schedules/<uuid:schedule_id>/resume/",
        views.schedule_pause,
        {"paused": False},
        name="schedule-resume",
    ),
    path("schedules/<uuid:schedule_id>/run/", views.schedule_run, name="schedule-run"),
    path("schedules/<uuid:schedule_id>/delete/", views.schedule_delete, name="schedule-delete"),
]
