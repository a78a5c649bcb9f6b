"""README.md's commands, run as a new user runs them: in a fresh copy of the repository, in order, section by section.

Three of its sections are run by tests of their own, and this says which: `make demo` by
tests/integration/playbooks/test_demo.py (the demo, twice and in check mode), the Galaxy install by
tests/integration/collection/test_install_from_galaxy.py (it builds and installs the tarball), and `make test` is
what CI runs, so here only its recipe is checked (`make -n`). Everything else runs here, as written, in a network
namespace that reaches nothing but its loopback.
"""

from __future__ import annotations

import uuid

import pytest

from .._docs import Session, copy_repository, offline_namespace, sections
from .._sites import REPO
from .._skips import require_commands, require_netns

README = REPO / "README.md"
# Sections whose commands another test runs: heading -> (that test, the text that shows it runs them).
ELSEWHERE = {
    "Install from Galaxy or a tarball": ("collection/test_install_from_galaxy.py", "Install from Galaxy or a tarball"),
}
MAKE_DEMO = ("playbooks/test_demo.py", '"make", "demo"')


def readme_sections() -> dict:
    return sections(README.read_text())


def test_the_commands_run_elsewhere_are_run_there():
    for title, (test, marker) in {**ELSEWHERE, "make demo": MAKE_DEMO}.items():
        assert marker in (REPO / "tests" / "integration" / test).read_text(), f"{test} does not run '{title}'"
    for title in ELSEWHERE:
        assert readme_sections().get(title), f"README.md has no commands under '## {title}'"


@pytest.fixture
def session(tmp_path):
    require_netns()
    require_commands("ip", "make", "git")
    root = copy_repository(tmp_path / "checkout")
    with offline_namespace(f"nvr{uuid.uuid4().hex[:8]}") as namespace:
        yield Session(root, tmp_path / "home", namespace)


def test_every_command_of_the_readme_runs_as_written(session):
    ran = []
    for title, found in readme_sections().items():
        if title in ELSEWHERE:
            continue
        for command in found:
            if command.text == "make demo":
                continue  # test_demo.py runs it
            if command.text == "make test":
                dry = session.check("make -n test")
                for layer in ("ruff check", "antsibull-changelog lint", "ansible-lint", "tests/sanity/run.sh",
                              "molecule", "pytest"):  # fmt: skip
                    assert layer in dry.output, f"make test does not run {layer}\n{dry.describe()}"
                ran.append(command.text)
                continue
            failing = "docs/examples/broken" in command.text  # the README shows how it fails
            session.check(command, failing=failing)
            ran.append(command.text)
    assert "make test" in ran and any("docs/examples/broken" in c for c in ran), ran
    assert any("ansible-inventory" in c for c in ran), ran
