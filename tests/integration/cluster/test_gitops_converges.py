"""Every site's rendered platform comes up on a fresh cluster, stage by stage, under the readiness rules of the
controllers it will meet (hacking/readiness.py: kstatus, Helm's wait, Flux's dependsOn and wait, MetalLB's pools,
the storage provisioners), applied to what the real kustomize builds from the rendered tree, as Flux builds it. A
deadlock fails the test naming the object, its stage and what it waits for."""

from __future__ import annotations

import itertools
import shutil

import pytest
import yaml
from readiness import Cluster

from .._kustomize import flux_build
from .._sites import site_dirs


def reconcile(site: dict, checkout, scratch):
    """The readiness model's verdict for checkout: flux-system applies clusters/<site>/, each stage its path."""
    counter = itertools.count()

    def build(path: str) -> list:
        place = scratch / f"build-{next(counter)}"
        place.mkdir()
        return flux_build(checkout / path, place).docs

    return Cluster(build).reconcile(build(site["flux"]["path"]))


@pytest.mark.parametrize("site_name", [d.name for d in site_dirs()])
def test_every_site_converges_stage_by_stage(rendered, site_name, tmp_path):
    site, checkout = rendered[site_name]
    verdict = reconcile(site, checkout, tmp_path)
    assert verdict.converged, f"{site_name} would never converge on a real cluster:\n{verdict.describe()}"
    stages = {f"Kustomization/flux-system/{s}" for s in ("infrastructure", "infrastructure-config", "platform", "apps")}
    assert stages <= set(verdict.ready)
    assert "HelmRelease/traefik/traefik" in verdict.ready
    traefik = verdict.objects[("Service", "traefik", "traefik")]
    first = site["metallb"]["addresses"][0].split("-")[0].split("/")[0].strip()
    assert traefik["status"]["loadBalancer"]["ingress"] == [{"ip": first}], "the pinned address, from the pool"


def move(checkout, stage_root: str, name: str, source: str, target: str) -> None:
    """Move a rendered file from one stage to another, both kustomization.yaml files following."""
    (checkout / stage_root / source / name).rename(checkout / stage_root / target / name)
    for stage, change in ((source, list.remove), (target, list.append)):
        path = checkout / stage_root / stage / "kustomization.yaml"
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        change(docs[0]["resources"], name)
        path.write_text(yaml.safe_dump_all(docs))


def test_traefik_in_metallbs_stage_deadlocks(rendered, tmp_path):
    """The tree as it was rendered before: Traefik in MetalLB's stage, the pool one stage later."""
    site, rendered_checkout = rendered["example-baremetal"]
    checkout = tmp_path / "checkout"
    shutil.copytree(rendered_checkout, checkout)
    move(checkout, f"platform/{site['site']['name']}", "traefik.yaml", "infrastructure-config", "infrastructure")
    verdict = reconcile(site, checkout, tmp_path)
    assert not verdict.converged
    cause = verdict.stuck[0]
    assert (cause.object, cause.stage) == ("HelmRelease/traefik/traefik", "infrastructure"), verdict.describe()
    assert "Service/traefik/traefik of type LoadBalancer has no address" in cause.waits_for
    assert "IPAddressPools applied so far: none" in cause.waits_for
    assert "Kustomization/flux-system/infrastructure-config" not in verdict.ready


def test_the_pool_in_metallbs_stage_is_refused(rendered, tmp_path):
    """MetalLB's CRDs come with its chart: a pool applied beside the chart's HelmRelease has no kind to be yet."""
    site, rendered_checkout = rendered["example-baremetal"]
    checkout = tmp_path / "checkout"
    shutil.copytree(rendered_checkout, checkout)
    move(checkout, f"platform/{site['site']['name']}", "metallb-pool.yaml", "infrastructure-config", "infrastructure")
    verdict = reconcile(site, checkout, tmp_path)
    cause = verdict.stuck[0]
    assert cause.object == "Kustomization/flux-system/infrastructure", verdict.describe()
    assert 'no matches for kind "IPAddressPool"' in cause.waits_for
