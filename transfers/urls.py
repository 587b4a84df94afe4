"""Console URLs for deliveries and copies, under /transfers/."""

from django.urls import path

from transfers import views

app_name = "transfers"

urlpatterns = [
    path("", views.delivery_list, name="delivery-list"),
    path("send/", views.delivery_send, name="delivery-send"),
    path("copy/<slug:name>/", views.delivery_copy, name="delivery-copy"),
    path("<uuid:delivery_id>/", views.delivery_detail, name="delivery-detail"),
    path("<uuid:delivery_id>/complete/", views.delivery_complete, name="delivery-complete"),
    path("<uuid:delivery_id>/stop/", views.delivery_stop, name="delivery-stop"),
]
