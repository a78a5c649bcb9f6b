"""common/errors: one root, NervError, under every layer's error; its message and details are what a failed module
returns."""

import pytest

from ansible_collections.nerv.homelab.plugins.module_utils.cluster.gitops.manifests import RenderError
from ansible_collections.nerv.homelab.plugins.module_utils.cluster.kube import KubeError
from ansible_collections.nerv.homelab.plugins.module_utils.common.errors import (
    HostError,
    NervError,
    Unpinned,
    Unreachable,
    mask,
)
from ansible_collections.nerv.homelab.plugins.module_utils.common.waiting import RunEnded
from ansible_collections.nerv.homelab.plugins.module_utils.nixos.nix import NixError
from ansible_collections.nerv.homelab.plugins.module_utils.proxmox.iso_plan import IsoError
from ansible_collections.nerv.homelab.plugins.module_utils.proxmox.iso_prune_apply import PruneError
from ansible_collections.nerv.homelab.plugins.module_utils.proxmox.settings import ProxmoxError
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.age import SopsError
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.site_ca import SiteCaError
from ansible_collections.nerv.homelab.plugins.module_utils.site.problems import SiteError
from ansible_collections.nerv.homelab.plugins.plugin_utils.discovery.flake import FlakeError
from ansible_collections.nerv.homelab.plugins.plugin_utils.discovery.site import DiscoveryError

LAYER_ERRORS = [HostError, Unreachable, Unpinned, KubeError, RenderError, RunEnded, NixError, IsoError, ProxmoxError,
                SopsError, SiteCaError, FlakeError, DiscoveryError]  # fmt: skip


@pytest.mark.parametrize("error", LAYER_ERRORS)
def test_every_layer_error_is_a_nerv_error(error):
    raised = error("it broke")
    assert isinstance(raised, NervError) and raised.message == str(raised) == "it broke"


def test_a_nerv_error_carries_its_details():
    error = HostError("nixos-rebuild failed", tail="last line", log_file="/l")
    assert error.message == "nixos-rebuild failed" and error.details == {"tail": "last line", "log_file": "/l"}


def test_the_special_errors_keep_their_details_as_the_attribute():
    assert NixError("x", rc=1, log_file=None).details == {"rc": 1}
    assert ProxmoxError("x", status=500).details == {"http_status": 500}
    assert PruneError("x", {"deleted": ["a"]}).details == {"deleted": ["a"]}
    assert isinstance(SiteError([]), NervError)


def test_mask_replaces_every_secret_longest_first():
    secret = "3f0b8e61-canary-secret"
    assert mask(f"a {secret} b {secret[:8]}", [secret[:8], secret, None]) == "a ******** b ********"
