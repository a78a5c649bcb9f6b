#!/usr/bin/python
# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: site_ca
short_description: Make the site's CA once, kept sops-encrypted, for cert-manager and the hosts' Caddy
version_added: 0.1.0
description:
  - Ensures the sops file O(path) holds the site CA - a private key (ECDSA P-256) and a self-signed CA certificate
    for the site's domain O(domain) - under the keys C(tls.crt) and C(tls.key), as a Kubernetes TLS Secret names
    them. cert-manager's ClusterIssuer C(site-ca) and Caddy on the site's hosts both issue from it, so a browser that
    trusts this one certificate trusts the cluster's dashboards and the home services.
  - The certificate's name constraints permit O(domain) and its subdomains only; it is valid for O(validity_days)
    (ten years by default) and may have one intermediate below it (Caddy makes one).
  - Made only when O(path) does not exist. An existing file is decrypted and checked - both keys there, a CA
    certificate, the key belonging to it, name constraints allowing O(domain) - and never replaced, unless
    O(rotate=true) asks for a new CA.
  - A new file is written with mode C(0600).
author:
  - nerv.homelab contributors (@nerv-homelab)
extends_documentation_fragment:
  - nerv.homelab.sops
  - nerv.homelab.attributes
options:
  path:
    description: The sops file (YAML), normally C(inventory/<site>/secrets/site-ca.sops.yaml).
    type: path
    required: true
  domain:
    description: The site's domain (C(network.domain)); the CA's name constraints permit it and its subdomains.
    type: str
    required: true
  common_name:
    description: The certificate's common name, as browsers show it; defaults to C(<domain> CA).
    type: str
  validity_days:
    description: How long a new CA certificate is valid, in days.
    type: int
    default: 3650
  rotate:
    description:
      - Make a new CA even though one exists. Everything issued from the old one must be issued again - cert-manager
        re-issues when the Secret changes, Caddy when its host is deployed - and browsers must trust the new one.
    type: bool
    default: false
  recipients:
    description:
      - Age recipients (C(age1...) or C(ssh-ed25519 ...)) for a new file, instead of a C(.sops.yaml) creation rule.
    type: list
    elements: str
  config:
    description:
      - The C(.sops.yaml) whose creation rule applies to a new file (O(path) matched against its C(path_regex) relative
        to its directory); without it, the one sops would find from the module's working directory.
    type: path
attributes:
  check_mode:
    details: Checks an existing CA, or says one would be made; writes nothing.
  diff_mode:
    details: The file's key paths and recipients before and after; never a value.
seealso:
  - module: nerv.homelab.sops_file
  - module: nerv.homelab.gitops_render
"""

EXAMPLES = r"""
- name: Make the site CA once
  nerv.homelab.site_ca:
    path: inventory/home/secrets/site-ca.sops.yaml
    domain: home.lab.example
    config: inventory/home/.sops.yaml
  register: site_ca

- name: Show the certificate to install in browsers (public)
  ansible.builtin.debug:
    msg: "{{ site_ca.certificate }}"

- name: Replace the CA, on request only
  nerv.homelab.site_ca:
    path: inventory/home/secrets/site-ca.sops.yaml
    domain: home.lab.example
    config: inventory/home/.sops.yaml
    rotate: true
"""

RETURN = r"""
path:
  description: The file.
  returned: always
  type: str
created:
  description: Whether the file was (or in check mode would be) made.
  returned: always
  type: bool
rotated:
  description: Whether an existing CA was (or in check mode would be) replaced.
  returned: always
  type: bool
certificate:
  description: The CA certificate, PEM (public); null in check mode when a new one would be made.
  returned: always
  type: str
subject:
  description: The certificate's subject; null in check mode when a new CA would be made.
  returned: always
  type: str
  sample: O=nerv.homelab,CN=home.lab.example CA
not_after:
  description: When the certificate expires (ISO 8601, UTC); null in check mode when a new CA would be made.
  returned: always
  type: str
sha256_fingerprint:
  description: SHA-256 of the certificate (DER), lower-case hex; null in check mode when a new CA would be made.
  returned: always
  type: str
domains:
  description: The DNS names the certificate's name constraints permit (null when it has none).
  returned: always
  type: list
  elements: str
recipients:
  description: The age recipients the file is encrypted to (after the change).
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nerv.homelab.plugins.module_utils.common import boundary
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.age import (
    IDENTITY_OPTIONS,
    identities,
    require_libraries,
)
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.site_ca import task


def argument_spec() -> dict:
    return {
        "path": {"type": "path", "required": True},
        "domain": {"type": "str", "required": True},
        "common_name": {"type": "str"},
        "validity_days": {"type": "int", "default": 3650},
        "rotate": {"type": "bool", "default": False},
        "recipients": {"type": "list", "elements": "str"},
        "config": {"type": "path"},
        **IDENTITY_OPTIONS,
    }


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)

    def work():
        require_libraries()
        return task(module.params, identities(module.params), module.check_mode)

    boundary.run_module(module, work)


if __name__ == "__main__":
    main()
