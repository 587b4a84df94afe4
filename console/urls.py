"""The dashboard's routes; bulkops/urls.py joins them with every app's console pages into
the "console" namespace."""

from django.urls import path

from console import dashboard_views

urlpatterns = [
    path("", dashboard_views.dashboard, name="dashboard"),
    path("running/", dashboard_views.dashboard_running, name="dashboard-running"),
]
