"""The self-check remote made before `local_client` existed gets its backend client, so
its URLs and key are admin-only (RemoteServer.change_permission) from the upgrade on."""

from django.db import migrations

SELF_NAME = "this-bulkops"  # remotes.self_server.SELF_NAME when this was written
SELF_CLIENT_NAME = "bulkops self-check"


def link_self_check_client(apps, schema_editor):
    RemoteServer = apps.get_model("remotes", "RemoteServer")
    BackendClient = apps.get_model("accounts", "BackendClient")
    server = RemoteServer.objects.filter(name=SELF_NAME, local_client__isnull=True).first()
    if server is None:
        return
    client = BackendClient.objects.filter(
        client_id=server.client_id, name=SELF_CLIENT_NAME
    ).first()
    if client is not None:
        server.local_client = client
        server.save(update_fields=["local_client"])


class Migration(migrations.Migration):
    dependencies = [
        ("remotes", "0004_token_url_confirmation_and_local_client"),
    ]

    operations = [
        migrations.RunPython(link_self_check_client, migrations.RunPython.noop),
    ]
