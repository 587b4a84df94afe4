"""Each stored resource keeps the references a Patient or Group export follows from it
(`Resource.refers_to`). Rows stored before have none yet (NULL), and so have rows that
the previous release writes while an upgrade runs: exports search their bodies as they
did before, until `fill_references` fills them. Schema only: no row is rewritten here."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("fhirstore", "0005_compartment_index_without_redundant_checks"),
    ]

    operations = [
        migrations.AddField(
            model_name="resource",
            name="refers_to",
            field=models.TextField(blank=True, null=True),
        ),
    ]
