"""The resource store moves from the exports app to its own: state only, no row touched."""

import django.db.models.deletion
from django.db import migrations, models


STORE_MODELS = ["resource", "compartmentmembership", "groupmembership", "resourceidentifier"]


def _relabel(apps, schema_editor, old, new):
    """Keep the content types (and so any permission on them) with the models."""
    ContentType = apps.get_model("contenttypes", "ContentType")
    ContentType.objects.filter(app_label=old, model__in=STORE_MODELS).update(app_label=new)


def move_content_types(apps, schema_editor):
    _relabel(apps, schema_editor, "exports", "fhirstore")


def move_content_types_back(apps, schema_editor):
    _relabel(apps, schema_editor, "fhirstore", "exports")


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('contenttypes', '0002_remove_content_type_name'),
        ('exports', '0004_export_job_last_resource_id'),
    ]

    operations = [
        # The tables exist since exports' 0001-0004; only Django's record of them moves.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='Resource',
                    fields=[
                        ('id', models.BigAutoField(primary_key=True, serialize=False)),
                        ('resource_type', models.CharField(max_length=64)),
                        ('resource_id', models.CharField(max_length=64)),
                        ('version_id', models.PositiveIntegerField(default=1)),
                        ('last_updated', models.DateTimeField()),
                        ('deleted', models.BooleanField(default=False)),
                        ('body', models.TextField(blank=True)),
                    ],
                    options={
                        'db_table': 'exports_resource',
                        'indexes': [models.Index(fields=['resource_type', 'last_updated'], name='resource_type_updated'), models.Index(fields=['resource_type', 'id'], name='resource_type_pk')],
                        'constraints': [models.UniqueConstraint(fields=('resource_type', 'resource_id'), name='resource_type_id_unique')],
                    },
                ),
                migrations.CreateModel(
                    name='GroupMembership',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('patient_id', models.CharField(max_length=64)),
                        ('inactive', models.BooleanField(default=False)),
                        ('group', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='memberships', to='fhirstore.resource')),
                    ],
                    options={
                        'db_table': 'exports_groupmembership',
                        'constraints': [models.UniqueConstraint(fields=('group', 'patient_id'), name='group_patient_unique')],
                    },
                ),
                migrations.CreateModel(
                    name='CompartmentMembership',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('resource_type', models.CharField(max_length=64)),
                        ('patient_id', models.CharField(max_length=64)),
                        ('resource', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='compartments', to='fhirstore.resource')),
                    ],
                    options={
                        'db_table': 'exports_compartmentmembership',
                        'indexes': [models.Index(fields=['patient_id', 'resource_type'], name='compartment_patient_type'), models.Index(fields=['resource_type', 'patient_id', 'resource'], name='compartment_type_patient_res')],
                        'constraints': [models.UniqueConstraint(fields=('resource', 'patient_id'), name='compartment_resource_patient_unique')],
                    },
                ),
                migrations.CreateModel(
                    name='ResourceIdentifier',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('resource_type', models.CharField(max_length=64)),
                        ('system', models.CharField(max_length=255)),
                        ('value', models.CharField(max_length=255)),
                        ('resource', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='identifiers', to='fhirstore.resource')),
                    ],
                    options={
                        'db_table': 'exports_resourceidentifier',
                        'indexes': [models.Index(fields=['resource_type', 'system', 'value'], name='identifier_lookup')],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(move_content_types, move_content_types_back),
    ]
