"""Bulk Submit: other servers push manifests to bulkops' `$bulk-submit`, and bulkops pulls
and loads the files they list into the store (spec digest bulk-data-v4-ballot.md §3)."""
