import uuid

from django.db import migrations, models


class Migration(migrations.Migration):
    """Client ids up to 4,096 characters, and the switch and (nullable until filled,
    0007) id of each remote's public key set URL."""

    dependencies = [
        ("remotes", "0005_link_self_check_client"),
    ]

    operations = [
        migrations.AlterField(
            model_name="remoteserver",
            name="client_id",
            field=models.CharField(help_text="Our client_id at that server.", max_length=4096),
        ),
        migrations.AddField(
            model_name="remoteserver",
            name="publish_jwks",
            field=models.BooleanField(
                default=True,
                editable=False,
                help_text="Serve the public key set at its URL without sign-in (admins switch it).",
            ),
        ),
        migrations.AddField(
            model_name="remoteserver",
            name="jwks_id",
            field=models.UUIDField(default=uuid.uuid4, editable=False, null=True),
        ),
    ]
