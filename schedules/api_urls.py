from django.urls import path

from schedules import api

urlpatterns = [
    path("schedules/", api.ScheduleListApi.as_view(), name="schedule-list"),
    path("schedules/create", api.ScheduleCreateApi.as_view(), name="schedule-create"),
    path("schedules/<uuid:schedule_id>", api.ScheduleDetailApi.as_view(), name="schedule-detail"),
    path(
        "schedules/<uuid:schedule_id>/update",
        api.ScheduleUpdateApi.as_view(),
        name="schedule-update",
    ),
    path(
        "schedules/<uuid:schedule_id>/pause", api.SchedulePauseApi.as_view(), name="schedule-pause"
    ),
    path(
        "schedules/<uuid:schedule_id>/resume",
        api.ScheduleResumeApi.as_view(),
        name="schedule-resume",
    ),
    path("schedules/<uuid:schedule_id>/run", api.ScheduleRunApi.as_view(), name="schedule-run"),
    path(
        "schedules/<uuid:schedule_id>/delete",
        api.ScheduleDeleteApi.as_view(),
        name="schedule-delete",
    ),
]
