"""The cluster layer's guarded imports: a library that did not import is named as Ansible's missing_required_lib
names it, before any use."""

from __future__ import annotations

import pytest

from ansible_collections.nerv.homelab.plugins.module_utils.cluster import kube


def test_without_the_kubernetes_library_the_client_is_refused_with_missing_required_lib_text(monkeypatch):
    monkeypatch.setattr(kube, "KUBERNETES_IMPORT_ERROR", ImportError("No module named 'kubernetes'"))
    with pytest.raises(kube.KubeError, match=r"^Failed to import the required Python library \(kubernetes\) on "):
        kube.api_client("/nonexistent/kubeconfig")
