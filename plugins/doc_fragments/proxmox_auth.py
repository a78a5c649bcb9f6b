# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """How nerv.homelab modules and plugins reach the Proxmox VE API (plugins/module_utils/proxmox/client.py)."""

    # For modules: the environment variables are read by the argument spec's fallbacks.
    DOCUMENTATION = r"""
options:
  url:
    description:
      - The API URL, C(https://HOST[:PORT]); the port defaults to 8006.
      - If not set, the environment variable E(PROXMOX_URL) is used.
    type: str
  token_id:
    description:
      - API token id, C(USER@REALM!TOKENID). Token authentication is preferred over O(user)/O(password).
      - If not set, the environment variable E(PROXMOX_TOKEN_ID) is used.
    type: str
  token_secret:
    description:
      - The secret of O(token_id). Never logged.
      - If not set, the environment variable E(PROXMOX_TOKEN_SECRET) is used.
    type: str
  user:
    description:
      - User for a password login, C(USER@REALM), when no O(token_id) is given. The login ticket is renewed
        when Proxmox says it expired.
      - If not set, the environment variable E(PROXMOX_USER) is used.
    type: str
  password:
    description:
      - Password of O(user). Never logged.
      - If not set, the environment variable E(PROXMOX_PASSWORD) is used.
    type: str
  validate_certs:
    description:
      - Verify the API's TLS certificate. Turn off only for a throwaway lab; prefer O(ca_path).
      - If not set, the environment variable E(PROXMOX_VALIDATE_CERTS) is used.
    type: bool
    default: true
  ca_path:
    description:
      - PEM bundle of the CA that signed the API's certificate (Proxmox's own C(pve-root-ca.pem), say).
      - If not set, the environment variable E(PROXMOX_CA_PATH) is used.
    type: path
  timeout:
    description:
      - Seconds each HTTP request may take.
      - If not set, the environment variable E(PROXMOX_TIMEOUT) is used.
    type: int
    default: 30
  retries:
    description:
      - How often an idempotent request (GET, PUT) is retried after a connection error or an HTTP 595-599 from
        pveproxy, waiting 0.5, 1, 2, 4, ... seconds in between.
      - If not set, the environment variable E(PROXMOX_RETRIES) is used.
    type: int
    default: 4
requirements:
  - proxmoxer >= 2.0
  - requests
"""

    # For controller plugins (the inventory): Ansible's configuration system reads the environment.
    PLUGIN = r"""
options:
  url:
    description: The API URL, C(https://HOST[:PORT]); the port defaults to 8006.
    type: str
    env:
      - name: PROXMOX_URL
  token_id:
    description: API token id, C(USER@REALM!TOKENID). Token authentication is preferred over O(user)/O(password).
    type: str
    env:
      - name: PROXMOX_TOKEN_ID
  token_secret:
    description: The secret of O(token_id). Never logged.
    type: str
    env:
      - name: PROXMOX_TOKEN_SECRET
  user:
    description: User for a password login, C(USER@REALM), when no O(token_id) is given.
    type: str
    env:
      - name: PROXMOX_USER
  password:
    description: Password of O(user). Never logged.
    type: str
    env:
      - name: PROXMOX_PASSWORD
  validate_certs:
    description:
      - Verify the API's TLS certificate. Unset means the site file's C(proxmox.validate_certs), else true.
    type: bool
    env:
      - name: PROXMOX_VALIDATE_CERTS
  ca_path:
    description: PEM bundle of the CA that signed the API's certificate.
    type: path
    env:
      - name: PROXMOX_CA_PATH
  timeout:
    description: Seconds each HTTP request may take.
    type: int
    default: 30
    env:
      - name: PROXMOX_TIMEOUT
  retries:
    description: How often an idempotent request is retried after a connection error or an HTTP 595-599.
    type: int
    default: 4
    env:
      - name: PROXMOX_RETRIES
requirements:
  - proxmoxer >= 2.0
  - requests
"""
