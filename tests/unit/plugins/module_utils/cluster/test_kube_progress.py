"""The waits for nodes and Flux objects: their progress lines, and a call that hands back (return_after)."""

from __future__ import annotations

import time

import pytest

from ansible_collections.nerv.homelab.plugins.module_utils.cluster import kube
from ansible_collections.nerv.homelab.plugins.module_utils.cluster.kube import KubeError, State


def state(name, ready="True", reason="ReconciliationSucceeded", generation=1, observed=1, kind="Kustomization"):
    return State(kind, "flux-system", name, ready, reason, "", generation, observed)


def test_flux_progress_counts_the_ready_and_names_what_it_waits_for():
    states = [state("flux-system"), state("infrastructure")]
    states += [state("infrastructure-config", "False", "DependencyNotReady"), state("apps", generation=2, observed=1)]
    pending = [s for s in states if not s.is_ready]
    assert kube.flux_progress(states, pending) == (
        "2 of 4 Flux objects Ready; waiting for Kustomization/infrastructure-config (DependencyNotReady), "
        "Kustomization/apps (generation 2 not reconciled yet)"
    )
    assert kube.flux_progress(states[:2], []) == "2 of 2 Flux objects Ready"
    assert kube.flux_progress([], []) == "no Flux objects (yet)"


def test_flux_progress_names_three_and_counts_the_rest():
    states = [state(f"k{i}", "Unknown", "") for i in range(5)]
    assert kube.flux_progress(states, states).endswith("Kustomization/k2 (Ready Unknown) and 2 more")


def test_nodes_progress():
    states = {"cp1": {"ready": "True", "reason": "KubeletReady", "message": ""},
              "worker1": {"ready": "False", "reason": "KubeletNotReady", "message": "cni"}}  # fmt: skip
    assert kube.nodes_progress(["cp1", "worker1", "worker2"], states) == (
        "1 of 3 nodes Ready; waiting for worker1 (NotReady: KubeletNotReady), worker2 (not joined yet)"
    )
    assert kube.nodes_progress(["cp1"], states) == "1 of 1 nodes Ready"


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


@pytest.fixture
def cluster(monkeypatch):
    """Nodes that turn Ready at given times of the test's clock."""
    clock = Clock()
    ready_at = {"cp1": 0, "worker1": 100}

    def node_states(_api):
        return {n: {"ready": "True" if clock.now >= t else "False", "reason": "", "message": ""}
                for n, t in ready_at.items()}  # fmt: skip

    monkeypatch.setattr(kube, "node_states", node_states)
    return clock


def test_a_call_with_return_after_hands_back_not_ready_then_a_later_one_sees_them_ready(cluster):
    names = ["cp1", "worker1"]
    states, missing = kube.wait_nodes(None, names, 300, 5, cluster, cluster.sleep, return_after=25)
    assert missing == ["worker1"] and cluster.now == 25
    cluster.now = 100
    states, missing = kube.wait_nodes(None, names, 300, 5, cluster, cluster.sleep, return_after=25)
    assert missing == [] and states["worker1"]["ready"] == "True" and cluster.now == 100


def test_the_tries_share_the_timeout_from_started_and_the_last_fails_as_one_call_would(cluster):
    with pytest.raises(KubeError, match="1 of 2 nodes are not Ready after 60 s") as failed:
        kube.wait_nodes(None, ["cp1", "worker1"], 60, 5, cluster, cluster.sleep, started=time.time() - 50,
                        return_after=25)  # fmt: skip
    assert cluster.now == pytest.approx(10, abs=1), "ten seconds were left of the wait"
    assert failed.value.details["progress"] == "1 of 2 nodes Ready; waiting for worker1 (NotReady)"
