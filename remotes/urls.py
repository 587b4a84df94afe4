"""Console URLs for remote servers, under /remotes/."""

from django.urls import path

from remotes import views

app_name = "remotes"

urlpatterns = [
    path("", views.remote_list, name="list"),
    path("new/", views.remote_create, name="create"),
    path("<slug:name>/", views.remote_detail, name="detail"),
    path("<slug:name>/edit/", views.remote_edit, name="edit"),
    path("<slug:name>/key/", views.remote_key, name="key"),
    path("<slug:name>/jwks.json", views.remote_jwks, name="jwks"),
    path("<slug:name>/discover/", views.remote_discover, name="discover"),
    path("<slug:name>/delete/", views.remote_delete, name="delete"),
    path("<slug:name>/export/", views.remote_launch, name="launch"),
]
