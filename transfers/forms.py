"""The console's form for sending an export to a remote server's `$bulk-submit` (also
the operator API's input check)."""

from __future__ import annotations

from django import forms
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from bulkops.fhir_http import absolute_url
from exports.models import ExportJob
from remotes.models import RemoteServer
from transfers import services
from transfers.models import Delivery


def base_url(request: HttpRequest) -> str:
    """This server's URL as receivers reach it: BULKOPS_BASE_URL, else the request's."""
    return absolute_url(request, "/")


def sendable_jobs() -> QuerySet[ExportJob]:
    """Exports that completed and still have their files."""
    now = timezone.now()
    jobs = ExportJob.objects.filter(status=ExportJob.Status.COMPLETED, deleted_at__isnull=True)
    return jobs.exclude(expires_at__lte=now).order_by("-completed_at")


class JobChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, job: ExportJob) -> str:
        done = timezone.localtime(job.completed_at).strftime("%Y-%m-%d %H:%M")
        short = str(job.uuid)[:8]
        return (
            f"{job.get_level_display()} export {short}, {job.resources_exported} resources, {done}"
        )


class SendForm(forms.Form):
    job = JobChoiceField(
        queryset=sendable_jobs(), to_field_name="uuid", help_text="A completed export of ours."
    )
    server = forms.ModelChoiceField(
        queryset=RemoteServer.objects.all(),
        to_field_name="name",
        help_text="The receiver: its $bulk-submit must know our client_id there with the "
        "system/bulk-submit scope.",
    )
    hold_open = forms.BooleanField(
        required=False,
        label="Keep the submission open",
        help_text="Send the manifest in-progress and complete or stop it later here; "
        "otherwise it is completed at once.",
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["job"].queryset = sendable_jobs()

    def clean_server(self) -> RemoteServer:
        server = self.cleaned_data["server"]
        if not server.client_id:
            raise forms.ValidationError(
                f"{server.name} has no client_id for us yet: register our public key set "
                "there, then add the client_id it gives us."
            )
        return server

    def send(self, request: HttpRequest) -> Delivery:
        """Send as the operator signed in to `request`; DeliveryRefused when it cannot."""
        return services.deliver(
            self.cleaned_data["job"],
            self.cleaned_data["server"],
            base_url=base_url(request),
            actor=request.user.get_username(),
            request=request,
            hold_open=self.cleaned_data["hold_open"],
        )
