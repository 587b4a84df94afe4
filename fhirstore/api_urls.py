from django.urls import path

import bulkops.fhir_paths  # noqa: F401 - registers the fhir_id path converter
from fhirstore import api

urlpatterns = [
    path("groups/", api.GroupListApi.as_view(), name="group-list"),
    path("groups/create", api.GroupCreateApi.as_view(), name="group-create"),
    path("groups/<fhir_id:group_id>", api.GroupDetailApi.as_view(), name="group-detail"),
    path("groups/<fhir_id:group_id>/update", api.GroupUpdateApi.as_view(), name="group-update"),
    path("groups/<fhir_id:group_id>/delete", api.GroupDeleteApi.as_view(), name="group-delete"),
    path("inventory/", api.InventoryApi.as_view(), name="inventory"),
]
