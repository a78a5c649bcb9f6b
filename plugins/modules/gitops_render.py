#!/usr/bin/python
# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: gitops_render
short_description: Render a site's GitOps platform (Flux stages, MetalLB, cert-manager, Traefik, Longhorn, monitoring)
version_added: 0.1.0
description:
  - Writes, into the checkout O(dest) of the site's GitOps repository, the Flux content of the site -
    C(<site_path>/stages.yaml) with four Kustomizations applied in order (C(infrastructure) ->
    C(infrastructure-config) -> C(platform) -> C(apps), C(dependsOn), C(wait), C(prune), sops decryption with the
    C(sops-age) Secret), and under C(<stage_root>/) the HelmRepositories and HelmReleases of MetalLB, cert-manager
    (CRDs through C(crds.enabled)), Traefik and Longhorn, the MetalLB IPAddressPool and L2Advertisement of the site's
    C(metallb.addresses), the ClusterIssuer C(site-ca) and its Secret, and the dashboards of Traefik (the chart's
    IngressRoute), Longhorn and Flux (Capacitor; Ingresses), each on Traefik's C(websecure) entry point only, with a
    certificate from the site CA and behind one basic-auth login. Traefik's HelmRelease is in the pool's stage
    (C(infrastructure-config)) because Helm waits for its LoadBalancer Service's address, which MetalLB gives only
    from the pool.
  - The dashboards' login and, with C(monitoring), Grafana's admin are each made once with a strong random password,
    sops-encrypted to O(sops_recipients) (C(stringData), mode 0600), and never made again while their file is there -
    C(<stage_root>/platform/dashboard-auth.sops.yaml) (Secret C(traefik/dashboard-auth) of type
    C(kubernetes.io/basic-auth), user C(admin)) and C(<stage_root>/infrastructure/grafana-admin.sops.yaml) (Secret
    C(monitoring/grafana-admin)). The passwords never appear in the result or the diff; a file there that is not
    sops-encrypted is refused.
  - The site CA is made once on the controller (M(nerv.homelab.site_ca), run by the role nerv.homelab.sops_keys) and
    shared with the Caddy hosts. It is decrypted here from O(site_file)'s C(secrets/site-ca.sops.yaml) (or
    O(site_ca_file)) and put into C(<stage_root>/infrastructure-config/site-ca.sops.yaml), Secret
    C(cert-manager/site-ca) of type C(kubernetes.io/tls) sops-encrypted to O(sops_recipients); it is re-encrypted
    only when the CA or the recipients change, and neither the key nor its ciphertext appear in the diff or the
    result. Without the site CA the module fails naming the keys phase (in check mode it reports the Secret as to be
    written).
  - With a C(monitoring) section in the site, also kube-prometheus-stack (Prometheus, Alertmanager, Grafana, node
    exporter, kube-state-metrics reporting Flux's objects) with the site's retention and volumes, Grafana's Ingress,
    and a PrometheusRule with the platform's alerts in the C(platform) stage.
  - The site's C(apps) go to C(<stage_root>/apps/), one file C(<name>.yaml) per app with its Namespace, chart source
    in C(flux-system) (HelmRepository C(app-<name>), or for an C(oci://) repository an OCIRepository of the chart),
    HelmRelease and, when asked, an Ingress with a certificate from the site CA. An app's C(values_sops) file is
    decrypted on the controller and put into C(<stage_root>/apps/<name>-values.sops.yaml), a Secret encrypted with
    sops to O(sops_recipients) that the HelmRelease reads through C(valuesFrom); it is re-encrypted only when the
    values or the recipients change. Neither the values nor their ciphertext appear in the diff or the result.
  - Files under C(<stage_root>/) that this module wrote before (they start with its header, or are Secrets it
    made and marked, app values or Grafana's admin) and that the site no longer renders are deleted, so an app
    removed from the site is removed from Git, and so is monitoring with Grafana's admin Secret when the site's
    C(monitoring) section goes; files you wrote yourself are never deleted.
  - A file is rewritten only when its content changes; the diff shows each changed file (a secret file as
    C(not shown)). Committing and pushing is the caller's (the role nerv.homelab.gitops_platform).
author:
  - nerv.homelab contributors (@nerv-homelab)
extends_documentation_fragment:
  - nerv.homelab.attributes
options:
  site_file:
    description: The site file.
    type: path
    required: true
  dest:
    description: The checkout of the GitOps repository.
    type: path
    required: true
  site_path:
    description: The cluster's directory in the repository (what flux-system applies); the site's C(flux.path).
    type: str
  stage_root:
    description: Where the stages' content goes; defaults to C(platform/<site name>).
    type: str
  sops_recipients:
    description:
      - Age recipients for the site's secrets in Git (the admins' and the cluster's Flux key's). When given, the
        repository's C(.sops.yaml) gets a creation rule for C(<stage_root>/**.sops.yaml) encrypting C(data) and
        C(stringData) to them; the rules of other sites and your own are kept.
      - Required for the Secrets encrypted to them - the site CA's, an app's C(values_sops) (give the Flux key's, or
        Flux cannot read it), the dashboards' login (every site) and, with C(monitoring), Grafana's admin while they
        are not there yet.
    type: list
    elements: str
  site_ca_file:
    description:
      - The site CA on the controller (sops file with C(tls.crt) and C(tls.key)); defaults to
        C(secrets/site-ca.sops.yaml) in the site file's directory, where the role nerv.homelab.sops_keys makes it.
    type: path
  identity_files:
    description:
      - Age key files or OpenSSH private keys to decrypt the apps' C(values_sops) files, the site CA (and the Secrets
        already in the checkout) with, tried before the places sops looks (E(SOPS_AGE_KEY), E(SOPS_AGE_KEY_FILE),
        E(SOPS_AGE_KEY_CMD), C(~/.config/sops/age/keys.txt), SSH keys).
    type: list
    elements: path
    default: []
attributes:
  check_mode:
    details: Renders and compares; writes and deletes nothing, and reports what it would.
  diff_mode:
    details: Every file that would change, before and after.
seealso:
  - module: nerv.homelab.flux_bootstrap
"""

EXAMPLES = r"""
- name: Render the platform into the checkout
  nerv.homelab.gitops_render:
    site_file: inventory/home/site.yml
    dest: ~/.cache/nerv-homelab/gitops/home

- name: Render with the site's secrets (apps' values_sops, Grafana's admin) encrypted for the admins and Flux
  nerv.homelab.gitops_render:
    site_file: inventory/home/site.yml
    dest: ~/.cache/nerv-homelab/gitops/home
    sops_recipients:
      - age1pya4cp2rnpjdn5cq02flau85thavutn4v4m5z3kcgcucyl7j3ewqsfcd3m
      - "{{ sops_keys_flux_recipient }}"
"""

RETURN = r"""
files:
  description: Every file rendered, relative to O(dest), the site's sops-encrypted files included.
  returned: always
  type: list
  elements: str
changed_files:
  description: The files written or deleted (or that would be, in check mode), relative to O(dest).
  returned: always
  type: list
  elements: str
removed_files:
  description:
    - The files deleted (or that would be, in check mode) because the site no longer renders them, relative to
      O(dest); they are also in RV(changed_files).
  returned: always
  type: list
  elements: str
  sample: [platform/home/apps/podinfo.yaml]
dashboards:
  description: Each dashboard's URL (served by Traefik once the platform is up, certificate from the site's CA).
  returned: always
  type: dict
  sample: {traefik: "https://traefik.home.lab/", longhorn: "https://longhorn.home.lab/", flux: "https://flux.home.lab/",
           grafana: "https://grafana.home.lab/"}
"""


from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nerv.homelab.plugins.module_utils.cluster.gitops import apply
from ansible_collections.nerv.homelab.plugins.module_utils.common.boundary import run_module
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.age import IDENTITY_OPTIONS


def argument_spec() -> dict:
    return {
        "site_file": {"type": "path", "required": True},
        "dest": {"type": "path", "required": True},
        "site_path": {"type": "str"},
        "stage_root": {"type": "str"},
        "sops_recipients": {"type": "list", "elements": "str"},
        "site_ca_file": {"type": "path"},
        **IDENTITY_OPTIONS,
    }


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_module(module, lambda: apply.execute(module))


if __name__ == "__main__":
    main()
