"""Devices join their patient's compartment in the index (bulkops/fhir/compartment.py):
index the stored ones once. Devices are a small share of a store, read in id order in
batches; the rule is copied here so this migration keeps meaning what it did."""

from __future__ import annotations

import json
import re

from django.db import migrations

BATCH = 2000
PATIENT = re.compile(r"^Patient/([A-Za-z0-9\-.]{1,64})$")


def index_devices(apps, schema_editor):
    Resource = apps.get_model("fhirstore", "Resource")
    CompartmentMembership = apps.get_model("fhirstore", "CompartmentMembership")
    devices = Resource.objects.filter(resource_type="Device", deleted=False).order_by("pk")
    last = 0
    while batch := list(devices.filter(pk__gt=last).values_list("pk", "body")[:BATCH]):
        rows = []
        for pk, body in batch:
            patient = json.loads(body).get("patient")
            reference = patient.get("reference") if isinstance(patient, dict) else None
            match = PATIENT.match(reference) if isinstance(reference, str) else None
            if match:
                rows.append(
                    CompartmentMembership(
                        resource_id=pk, resource_type="Device", patient_id=match.group(1)
                    )
                )
        CompartmentMembership.objects.bulk_create(rows, ignore_conflicts=True)
        last = batch[-1][0]


def unindex_devices(apps, schema_editor):
    apps.get_model("fhirstore", "CompartmentMembership").objects.filter(
        resource_type="Device"
    ).delete()


class Migration(migrations.Migration):
    dependencies = [("fhirstore", "0001_resource_store_moved_from_exports")]

    operations = [migrations.RunPython(index_devices, unindex_devices)]
