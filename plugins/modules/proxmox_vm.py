#!/usr/bin/python
# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: proxmox_vm
short_description: One VM of a site on Proxmox VE - cloned from a template, configured, started, stopped or removed
version_added: 0.1.0
description:
  - Clones the VM from a template when its vmid is free, then sets only the config keys that differ (CPU, memory,
    tags, description, start at boot, cloud-init), grows the C(scsi0) disk, and starts or stops it.
  - Every VM it makes carries the tag C(nerv-site-<site>). A VM at the vmid without that tag is refused and never
    touched; one with the tag and the same O(name) is adopted and converged, so an interrupted run picks up where
    it stopped without making a second VM.
  - The clone request itself gives the new VM a description naming the template, the host and the site, before the
    first config write tags it. When the answer to the clone is lost (a 596 or 503 from a proxy, a timeout, a run
    killed at the clone) while Proxmox made the VM, the next run recognises that untagged VM as this host's clone
    by that description, adopts it and finishes it; an untagged VM without it stays refused.
  - With O(state=started) it waits until the guest agent reports an address and reads the VM's ed25519 SSH host key
    through the agent.
  - A second run with the same options sends no write request to Proxmox.
author:
  - nerv.homelab contributors (@nerv-homelab)
extends_documentation_fragment:
  - nerv.homelab.proxmox_auth
  - nerv.homelab.attributes
options:
  name:
    description: Name of the VM (a DNS name).
    type: str
    required: true
  vmid:
    description:
      - The VM's id, from the site file. Never taken from C(/cluster/nextid), which races with parallel clones.
    type: int
    required: true
  node:
    description: Node the VM is cloned to. An existing VM is managed on the node it is on.
    type: str
    required: true
  state:
    description:
      - V(present) makes and configures the VM; V(started) also starts it and waits for its address; V(stopped)
        shuts it down; V(absent) removes it (only a VM with this site's tag).
    type: str
    choices: [present, started, stopped, absent]
    default: present
  site:
    description:
      - Name of the site. The VM is tagged C(nerv-site-<site>); a VM at the vmid without that tag is never touched.
    type: str
    required: true
  template:
    description:
      - Name or vmid of the template to clone when the VM does not exist yet. A name must match exactly one
        template; give the vmid when several versions share a name.
    type: str
  full:
    description: Full clone (V(true)) or linked clone (V(false)).
    type: bool
    default: true
  storage:
    description: Storage of a full clone's disks (default the template's). Not for linked clones.
    type: str
  pool:
    description: Resource pool the clone joins.
    type: str
  cores:
    description: CPU cores.
    type: int
  memory:
    description: Memory in MiB.
    type: int
  disk:
    description:
      - Size of the C(scsi0) disk in GiB. A larger size grows the disk; a smaller one is refused, disks are never
        shrunk.
    type: int
  tags:
    description:
      - Tags of the VM (the site tag C(nerv-site-<site>) is always added). Other tags are removed when this is set.
      - When not set, the VM keeps its tags, less the template pipeline's (C(nerv-template), C(nerv-build-*),
        C(nerv-phase-*)).
    type: list
    elements: str
  description:
    description: Description (notes) of the VM.
    type: str
  onboot:
    description: Start the VM when its node boots.
    type: bool
  ciuser:
    description: Cloud-init user name.
    type: str
  sshkeys:
    description: Cloud-init SSH public keys, one per item.
    type: list
    elements: str
  ipconfig0:
    description: Cloud-init network of the first NIC, e.g. C(ip=10.0.0.11/24,gw=10.0.0.1) or C(ip=dhcp).
    type: str
  nameserver:
    description: Cloud-init DNS servers, separated by spaces.
    type: str
  searchdomain:
    description: Cloud-init DNS search domain.
    type: str
  cidr:
    description:
      - Networks to prefer when picking RV(address) among the addresses the guest agent reports. With O(cidr),
        the module waits for an address inside one of them (up to O(wait_timeout)), then falls back to the best
        other address with a warning.
    type: list
    elements: str
  known_hosts:
    description:
      - With O(state=started), pin the host key read through the guest agent (RV(host_key)) in this known_hosts file
        at RV(address); an entry of that address with another ed25519 key is replaced, other entries stay
        (M(nerv.homelab.host_keys) then refuses a host whose key changed against the one it recorded).
      - Parallel runs of this module (one per VM, as async jobs) may pin into the same file.
      - Pinning counts as a change (RV(pinned)); in check mode nothing is written.
    type: path
  wait_timeout:
    description: Seconds to wait for the guest agent to report an address with O(state=started).
    type: int
    default: 300
  force:
    description:
      - With O(state=absent), stop a running VM and (unless O(unprotect=false)) clear its protection before removing
        it. With O(state=stopped), stop the VM at once instead of a guest shutdown.
    type: bool
    default: false
  unprotect:
    description:
      - With O(state=absent), clear the VM's C(protection=1) before removing it. A protected VM is refused unless
        this is true; when not set, it follows O(force).
      - C(playbooks/teardown.yml) sets it only for the VMs named in C(teardown_unprotect).
    type: bool
  lock_timeout:
    description: Seconds to wait for a locked template or VM (backup, clone, migrate, ...) before failing.
    type: int
    default: 60
  run_pid:
    description:
      - The process of the run that started this call, for a call run as a background job (C(async), C(poll 0));
        give the C(ansible-playbook) of the task, which the lookup C(nerv.homelab.run_pid) returns.
      - Ansible's background jobs outlive a run stopped with Ctrl-C, SIGTERM or SIGKILL. Watching the run, the job
        stops once it has ended, before its next step (clone, config, start, ...) or at its next look while it waits
        (a Proxmox task, a lock, the guest agent), failing with a message that says where it stopped; a Proxmox task
        under way is left to finish. A later run picks up where it stopped.
    type: int
attributes:
  check_mode:
    details:
      - Reports the actions (RV(actions)) and config changes a run would make, and writes nothing.
      - A VM to be cloned from a template that does not exist yet (C(site.yml --check) on a new site) is planned from
        its settings alone, with a warning.
  diff_mode:
    details: Shows the changed config keys and the status before and after.
notes:
  - Config keys Proxmox cannot change on a running VM (e.g. O(cores), cloud-init) become pending; they take effect
    at its next start, and the module warns.
seealso:
  - module: nerv.homelab.proxmox_template_build
"""

EXAMPLES = r"""
- name: Clone, configure and start cp1, waiting for its address
  nerv.homelab.proxmox_vm:
    name: cp1
    vmid: 101
    node: pve1
    site: demo
    state: started
    template: nixos-base
    storage: local-lvm
    cores: 2
    memory: 4096
    disk: 32
    tags: [k8s-control-plane]
    onboot: true
    ciuser: admin
    sshkeys:
      - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINU9pb4AcSwRvvlx7xnotXk8P/jB2vMcsoOo2WrkuQWN admin1@laptop
    ipconfig0: ip=10.77.0.11/24,gw=10.77.0.1
    nameserver: 10.77.0.1
    searchdomain: demo.lab.example
    cidr: [10.77.0.0/24]
  register: vm
  delegate_to: localhost

- name: Remove worker2, even if it runs
  nerv.homelab.proxmox_vm:
    name: worker2
    vmid: 103
    node: pve2
    site: demo
    state: absent
    force: true
  delegate_to: localhost
"""

RETURN = r"""
vmid:
  description: The VM's vmid.
  returned: success
  type: int
  sample: 101
node:
  description: The node the VM is on.
  returned: success
  type: str
  sample: pve1
status:
  description: C(running), C(stopped) or C(absent) after the run (in check mode, what it would be).
  returned: success
  type: str
  sample: running
actions:
  description:
    - What this run did (in check mode, would do), in order - C(clone), C(config), C(resize), C(start), C(stop),
      C(unprotect), C(delete).
  returned: success
  type: list
  elements: str
  sample: [clone, config, resize, start]
changed_keys:
  description: The options whose Proxmox config changed (C(disk) for a resize).
  returned: success
  type: list
  elements: str
  sample: [cores, memory, tags, sshkeys, ipconfig0, disk]
addresses:
  description:
    - The addresses the guest agent reports (no loopback, link-local); empty unless O(state=started).
  returned: success
  type: list
  elements: str
  sample: [10.77.0.11, 10.42.0.1]
address:
  description: The address picked from RV(addresses) (see O(cidr)); null unless O(state=started).
  returned: success
  type: str
  sample: 10.77.0.11
host_key:
  description:
    - The VM's SSH host key C(ssh-ed25519 AAAA...), read through the guest agent from
      C(/etc/ssh/ssh_host_ed25519_key.pub) with O(state=started); null (with a warning) when it cannot be read.
  returned: success
  type: str
  sample: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHv8o3b1Jm1cX0fC9JY3g9v0Y8cTn1v3Cz5pK2r8l0aB
pinned:
  description: Whether RV(host_key) was pinned in O(known_hosts) at RV(address) now (would be, in check mode).
  returned: success
  type: bool
  sample: false
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nerv.homelab.plugins.module_utils.common.boundary import run_module
from ansible_collections.nerv.homelab.plugins.module_utils.proxmox.settings import proxmox_argument_spec
from ansible_collections.nerv.homelab.plugins.module_utils.proxmox.vm_apply import run


def argument_spec() -> dict:
    return {
        **proxmox_argument_spec(),
        "name": {"type": "str", "required": True},
        "vmid": {"type": "int", "required": True},
        "node": {"type": "str", "required": True},
        "state": {"type": "str", "default": "present", "choices": ["present", "started", "stopped", "absent"]},
        "site": {"type": "str", "required": True},
        "template": {"type": "str"},
        "full": {"type": "bool", "default": True},
        "storage": {"type": "str"},
        "pool": {"type": "str"},
        "cores": {"type": "int"},
        "memory": {"type": "int"},
        "disk": {"type": "int"},
        "tags": {"type": "list", "elements": "str"},
        "description": {"type": "str"},
        "onboot": {"type": "bool"},
        "ciuser": {"type": "str"},
        "sshkeys": {"type": "list", "elements": "str", "no_log": False},
        "ipconfig0": {"type": "str"},
        "nameserver": {"type": "str"},
        "searchdomain": {"type": "str"},
        "cidr": {"type": "list", "elements": "str"},
        "known_hosts": {"type": "path"},
        "wait_timeout": {"type": "int", "default": 300},
        "force": {"type": "bool", "default": False},
        "unprotect": {"type": "bool"},
        "lock_timeout": {"type": "int", "default": 60},
        "run_pid": {"type": "int"},
    }


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_module(module, lambda: run(module))


if __name__ == "__main__":
    main()
