from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("remotes", "0008_unique_jwks_ids"),
    ]

    operations = [
        migrations.AddField(
            model_name="remoteexchange",
            name="note",
            field=models.TextField(blank=True, help_text="What bulkops made of the answer."),
        ),
    ]
