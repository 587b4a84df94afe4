"""A Bulk Data conformance battery run against a RemoteTarget: pass/fail/warn/skip per
check with the redacted exchanges and excerpts that show why."""

from remotes.checks.base import CheckResult
from remotes.checks.battery import CHECKS, overall_status, run_battery

__all__ = ["CHECKS", "CheckResult", "overall_status", "run_battery"]
