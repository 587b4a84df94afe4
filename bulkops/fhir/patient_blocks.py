"""The wire form of `organizeOutputBy=Patient` output (v4 digest §1.7): the header line
that leads each patient block, and what the manifest says of the layout."""

from __future__ import annotations

import json

PATIENT_BLOCKS = (
    "One block per patient: a Parameters header line naming the Patient, the Patient, then "
    "the resources of its Patient compartment (a resource in several compartments is in "
    "each block). Resources outside every patient's compartment are not exported. A block "
    "is split only when it alone has more lines than a file holds; the header then leads "
    "each continuation file, named by continuesInFile. count includes the header lines."
)


def header_line(patient_id: str) -> bytes:
    """The block header the IG defines, without its newline."""
    header = {
        "resourceType": "Parameters",
        "parameter": [{"name": "header", "valueReference": {"reference": f"Patient/{patient_id}"}}],
    }
    return json.dumps(header, separators=(",", ":")).encode()
