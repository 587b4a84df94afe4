"""Console URLs for remote servers, under /remotes/."""

from django.urls import path

from remotes import views

app_name = "remotes"

urlpatterns = [
    path("", views.remote_list, name="remote-list"),
    path("new/", views.remote_create, name="remote-create"),
    path("<slug:name>/", views.remote_detail, name="remote-detail"),
    path("<slug:name>/edit/", views.remote_edit, name="remote-edit"),
    path("<slug:name>/key/", views.remote_key, name="remote-key"),
    path("<slug:name>/jwks.json", views.remote_jwks, name="remote-jwks"),
    path("<slug:name>/publish-jwks/", views.remote_publish_jwks, name="remote-publish-jwks"),
    path("<slug:name>/discover/", views.remote_discover, name="remote-discover"),
    path(
        "<slug:name>/confirm-token-url/",
        views.remote_confirm_token_url,
        name="remote-confirm-token-url",
    ),
    path("<slug:name>/delete/", views.remote_delete, name="remote-delete"),
    path("<slug:name>/export/", views.remote_launch, name="remote-launch"),
]
