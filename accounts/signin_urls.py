"""URLs under /accounts/: allauth's sign-in pages, with bulkops' password reset pages
in front of allauth's own (the first pattern that matches a path wins)."""

from django.urls import include, path

from accounts import password_reset_views

urlpatterns = [
    path("password/reset/", password_reset_views.password_reset, name="account_reset_password"),
    path(
        "password/reset/done/",
        password_reset_views.password_reset_done,
        name="account_reset_password_done",
    ),
    path("", include("allauth.urls")),
]
