"""The resource store now belongs to fhirstore: state only, the tables stay."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('exports', '0004_export_job_last_resource_id'),
        ('fhirstore', '0001_resource_store_moved_from_exports'),
    ]

    operations = [
        # fhirstore's 0001 took over these tables; they stay, only exports forgets them.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveField(
                    model_name='groupmembership',
                    name='group',
                ),
                migrations.RemoveField(
                    model_name='resourceidentifier',
                    name='resource',
                ),
                migrations.DeleteModel(
                    name='CompartmentMembership',
                ),
                migrations.DeleteModel(
                    name='GroupMembership',
                ),
                migrations.DeleteModel(
                    name='Resource',
                ),
                migrations.DeleteModel(
                    name='ResourceIdentifier',
                ),
            ],
            database_operations=[],
        ),
    ]
