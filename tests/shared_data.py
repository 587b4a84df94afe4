"""Where the shared test data lives: `../shared/data` next to the main checkout.

A checkout kept elsewhere (a git worktree in a folder of its own) sits deeper, so the
folder is looked for beside the repository and beside each of its parents;
BULKOPS_SHARED_DATA names it outright.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]


def find_shared_data() -> Path:
    if configured := os.environ.get("BULKOPS_SHARED_DATA"):
        return Path(configured)
    for parent in REPO.parents:
        if (parent / "shared" / "data").is_dir():
            return parent / "shared" / "data"
    return REPO.parent / "shared" / "data"


SHARED_DATA = find_shared_data()
SYNTHEA_NDJSON = SHARED_DATA / "synthea" / "ndjson"
SYNTHEA_BUNDLES = SHARED_DATA / "synthea" / "bundles"

# Tests that read the shared Synthea data skip, saying where they looked, in a checkout
# without it beside (CI lays ../shared beside its clone).
needs_synthea = pytest.mark.skipif(
    not SYNTHEA_NDJSON.is_dir(), reason=f"no Synthea data in {SYNTHEA_NDJSON} (see its README)"
)


def synthea_ndjson(resource_type: str) -> list[dict[str, Any]]:
    """The shared NDJSON resources of one type, parsed."""
    path = SYNTHEA_NDJSON / f"{resource_type}.000.ndjson"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def synthea_bundle_resources(resource_type: str) -> list[dict[str, Any]]:
    """The resources of one type in the shared patient Bundles, parsed."""
    found = []
    for path in sorted(SYNTHEA_BUNDLES.glob("*_*.json")):  # Name_Surname_uuid.json
        bundle = json.loads(path.read_text())
        found += [
            entry["resource"]
            for entry in bundle["entry"]
            if entry["resource"]["resourceType"] == resource_type
        ]
    return found
