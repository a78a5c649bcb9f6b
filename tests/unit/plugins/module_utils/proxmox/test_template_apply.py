"""The template build's progress line: where the build stands, in one sentence."""

from __future__ import annotations

import pytest

from ansible_collections.nerv.homelab.plugins.module_utils.proxmox.template_apply import progress


@pytest.mark.parametrize(
    ("phase", "uptime", "check_mode", "line"),
    [
        ("installing", 250, False, "installer VM 9100 on pve1 running for 4m 10s: the unattended install is in "
         "progress; waiting for it to power the VM off"),
        ("installing", None, False, "installer VM 9100 on pve1 running: the unattended install is in progress; "
         "waiting for it to power the VM off"),
        ("installing", 42, False, "installer VM 9100 on pve1 running for 42s: the unattended install is in progress; "
         "waiting for it to power the VM off"),
        ("created", None, False, "installer VM 9100 on pve1 created, not started yet"),
        ("installed", None, False, "installer VM 9100 on pve1 powered off: the install is done; next it becomes the "
         "template"),
        ("template", None, False, "template 9100 on pve1 is ready"),
        ("template", None, True, "template 9100 on pve1 is ready"),
        (None, None, True, "check mode: installer VM 9100 on pve1 would be taken to a template (absent now)"),
        ("installing", None, True, "check mode: installer VM 9100 on pve1 would be taken to a template (installing "
         "now)"),
    ],
)  # fmt: skip
def test_progress(phase, uptime, check_mode, line):
    assert progress(phase, 9100, "pve1", uptime, check_mode) == line
