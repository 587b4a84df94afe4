"""Server check pages under /remotes/."""

from __future__ import annotations

from django.urls import path

from remotes import check_views

app_name = "remote-checks"

urlpatterns = [
    path("self-check/", check_views.check_self, name="self"),
    path("<slug:name>/checks/", check_views.check_list, name="list"),
    path("<slug:name>/checks/<int:check_id>/", check_views.check_detail, name="detail"),
    path("<slug:name>/checks/<int:check_id>/results/", check_views.check_results, name="results"),
]
