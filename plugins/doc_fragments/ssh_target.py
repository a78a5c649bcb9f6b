# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """How the modules that reach a host over SSH log in (Target in plugins/module_utils/common/ssh.py).

    host, address and known_hosts are TARGET_OPTIONS there (a module may say more of host in its own options); the
    login options alone are SSH_OPTIONS."""

    DOCUMENTATION = r"""
options:
  host:
    description: The host's name, as the site or the flake names it.
    type: str
    required: true
  address:
    description: The host's address.
    type: str
    required: true
  known_hosts:
    description: The known_hosts pinning the host's key; connections are refused when it does not match.
    type: path
    required: true
  port:
    description: SSH port.
    type: int
    default: 22
  user:
    description: SSH user on the host (root, or a user allowed to do what the module does there).
    type: str
    default: root
  identity_file:
    description: The SSH private key to log in with (keys only, never a password prompt).
    type: path
  connect_timeout:
    description:
      - Seconds SSH waits for the host to answer (ssh's C(ConnectTimeout)); a host that does not answer in time is
        unreachable (check mode then plans without it).
    type: int
    default: 10
"""
