from django.urls import path

from accounts import views

app_name = "console"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("audit/", views.audit_trail, name="audit-trail"),
    path("operators/", views.operator_list, name="operator-list"),
]
