import uuid

from django.db import migrations


def give_each_server_its_own_id(apps, schema_editor):
    """AddField gave every existing row the same default; each needs its own."""
    RemoteServer = apps.get_model("remotes", "RemoteServer")
    for server in RemoteServer.objects.only("pk"):
        RemoteServer.objects.filter(pk=server.pk).update(jwks_id=uuid.uuid4())


class Migration(migrations.Migration):
    dependencies = [
        ("remotes", "0006_long_client_ids_and_published_jwks"),
    ]

    operations = [
        migrations.RunPython(give_each_server_its_own_id, migrations.RunPython.noop),
    ]
