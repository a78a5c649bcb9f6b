# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: run_pid
short_description: The process id of the ansible-playbook running the task
version_added: 0.1.0
description:
  - Returns the pid of the C(ansible-playbook) (or C(ansible)) process that runs the current task, for a background
    job to watch (M(nerv.homelab.proxmox_vm)'s O(nerv.homelab.proxmox_vm#module:run_pid)), so that a job of a run
    stopped with Ctrl-C, SIGTERM or SIGKILL stops too instead of working on for its whole C(async) time.
  - Tasks are templated in a worker process that the run forks for them, so the run is the worker's parent.
author:
  - nerv.homelab contributors (@nerv-homelab)
options: {}
"""

EXAMPLES = r"""
- name: A VM as a background job that stops with its run
  nerv.homelab.proxmox_vm:
    name: cp1
    vmid: 101
    node: pve1
    site: home
    template: nixos-base
    state: started
    run_pid: "{{ lookup('nerv.homelab.run_pid') }}"
  async: 1800
  poll: 0
"""

RETURN = r"""
_raw:
  description: The pid of the run, one item.
  type: list
  elements: int
"""

import os

from ansible.plugins.lookup import LookupBase


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        # templating runs in the worker the run forked for this task: its parent is the run itself
        return [os.getppid()]
