# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: sops
short_description: Read a value (or the whole content) of a sops file
version_added: 0.1.0
description:
  - Decrypts a sops file (YAML, JSON or dotenv, age recipients) natively in Python, verifies its MAC and returns
    one value, or the whole decrypted content when O(key) is not given.
  - Relative paths are searched like other file lookups (the role's or playbook's C(files/), then their directory).
  - Use the result in a task with C(no_log), or pass it straight on to a module option that is C(no_log).
author:
  - nerv.homelab contributors (@nerv-homelab)
extends_documentation_fragment:
  - nerv.homelab.sops
options:
  _terms:
    description: The sops file(s).
    required: true
    type: list
    elements: path
  key:
    description:
      - Key path of the value, C(a.b.c) (nested keys), or sops' index syntax C(["a.b"]["c"]) for a key whose name
        holds a dot (as C(sops decrypt --extract) takes it); without it the whole content is returned.
    type: str
  format:
    description:
      - The store; by default from the file name as sops picks it (C(.yaml)/C(.yml), C(.json), C(.env), C(.ini),
        anything else binary).
    type: str
    choices: [yaml, json, dotenv, ini, binary]
  base64:
    description:
      - Return the value base64-encoded, for binary data (a binary file's content, or any value that is not UTF-8
        text), like the option of the same name of community.sops' lookup. The result is the base64 of the value's
        bytes (a string's UTF-8) as text; hand it to what takes base64, such as the C(data) of a Kubernetes Secret.
      - Takes one value, so O(key) is needed unless the file is binary (then the whole content is encoded).
      - When V(false), a value that is not UTF-8 text fails the lookup naming this option, as Ansible cannot
        template bytes.
    type: bool
    default: false
seealso:
  - module: nerv.homelab.sops_file
"""

EXAMPLES = r"""
- name: Give the K3s token to a module option that is no_log
  some.collection.k3s_join:
    token: "{{ lookup('nerv.homelab.sops', 'inventory/home/secrets/k3s.sops.yaml', key='token') }}"

- name: A top-level key whose name holds a dot
  ansible.builtin.set_fact:
    smtp_password: "{{ lookup('nerv.homelab.sops', 'secrets/app.sops.yaml', key='[\"smtp.password\"]') }}"
  no_log: true

- name: Everything in a file, for a task that logs nothing
  ansible.builtin.set_fact:
    proxmox_secrets: "{{ lookup('nerv.homelab.sops', 'secrets/proxmox.sops.yaml') }}"
  no_log: true

- name: A binary file (a keytab), base64-encoded, into a Kubernetes Secret's data
  kubernetes.core.k8s:
    definition:
      apiVersion: v1
      kind: Secret
      metadata: {name: krb5-keytab, namespace: auth}
      data:
        krb5.keytab: "{{ lookup('nerv.homelab.sops', 'secrets/krb5.keytab.sops', base64=true) }}"
  no_log: true

- name: The same bytes into a file on the host
  ansible.builtin.copy:
    content: "{{ lookup('nerv.homelab.sops', 'secrets/krb5.keytab.sops', base64=true) | b64decode }}"
    dest: /etc/krb5.keytab
    mode: "0600"
  no_log: true
"""

RETURN = r"""
_raw:
  description:
    - The value at O(key), or the whole decrypted content, one per term; strings are text (never bytes).
    - With O(base64=true), the base64 of the value's bytes (or of a binary file's content), as text.
  type: list
  elements: raw
"""

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

from ansible_collections.nerv.homelab.plugins.module_utils.secrets.age import (
    SopsError,
    load_identities,
    require_libraries,
)
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops import files


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        try:
            require_libraries()
            identities = load_identities(extra_files=self.get_option("identity_files"))
            return [self._read(term, variables, identities) for term in terms]
        except SopsError as exc:
            raise AnsibleLookupError(f"nerv.homelab.sops: {exc}") from None

    def _read(self, term, variables, identities):
        path = self.find_file_in_search_path(variables, "files", term, ignore_missing=True)
        if not path:
            raise SopsError(f"sops file {term} not found")
        options = self.get_options()
        return files.read_for_template(path, options["key"], identities, options["format"], options["base64"])
