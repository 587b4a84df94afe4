from django.urls import path

from transfers import api

urlpatterns = [
    path("deliveries/", api.DeliveryListApi.as_view(), name="delivery-list"),
    path("deliveries/create", api.DeliveryCreateApi.as_view(), name="delivery-create"),
    path("deliveries/<uuid:delivery_id>", api.DeliveryDetailApi.as_view(), name="delivery-detail"),
    path(
        "deliveries/<uuid:delivery_id>/complete",
        api.DeliveryCompleteApi.as_view(),
        name="delivery-complete",
    ),
    path("deliveries/<uuid:delivery_id>/stop", api.DeliveryStopApi.as_view(), name="delivery-stop"),
]
