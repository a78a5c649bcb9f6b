"""Every test imports the collection as ansible_collections.nerv.homelab through the committed symlink.

Under CI (CI=true, as `.ci/run` runs) a skip is a failure: CI installs every package, group and privilege the
tests need, so a test that would skip there means an install step is missing, and a green run must not hide it.
Skips stay for a developer's machine, where they say what to install.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

COLLECTIONS = Path(__file__).resolve().parents[1] / "collections"
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))


def ci_forbids_skips() -> bool:
    """True under CI: CI=true (or 1/yes), as CI services and `.ci/run` set it."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def _fail_skip(report: pytest.CollectReport | pytest.TestReport) -> None:
    if not (report.skipped and ci_forbids_skips()) or hasattr(report, "wasxfail"):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    report.outcome = "failed"
    report.longrepr = (
        f"CI=true forbids skips, and this one means the machine lacks what the test needs: {reason}. "
        "Fix .ci/run (or the requirements) so a fresh machine has it."
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _fail_skip(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _fail_skip(outcome.get_result())
