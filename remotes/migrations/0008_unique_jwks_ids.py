import uuid

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("remotes", "0007_fill_jwks_ids"),
    ]

    operations = [
        migrations.AlterField(
            model_name="remoteserver",
            name="jwks_id",
            field=models.UUIDField(default=uuid.uuid4, editable=False, unique=True),
        ),
    ]
