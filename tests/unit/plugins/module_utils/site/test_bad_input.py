"""Bad input in a site file (issue 24, part 2): each case is refused by load_site, the one reader every module, role
and inventory plugin goes through, with a SiteError naming the field and the fix: never a traceback, a silently
dropped value, a secret echoed or a run that does not end.

To add a case, add a row to CASES: a valid shipped site, one mutation of it, the field the problem must name and
words its message and fix must hold.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from ansible_collections.nerv.homelab.plugins.module_utils.site.model import SiteError, load_site
from ansible_collections.nerv.homelab.plugins.module_utils.site.reader import MAX_BYTES

REPO = Path(__file__).resolve().parents[5]
CANARY = "CANARY7f3e9b1cDoNotPrint"
GITHUB_TOKEN = "ghp_" + CANARY + "0123456789ab"  # the shape of a classic token: ghp_ and 36 letters or digits
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINU9pb4AcSwRvvlx7xnotXk8P/jB2vMcsoOo2WrkuQWN"
RECIPIENT = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"
# The file itself, for the problems of the whole file (its size, its encoding, its YAML)
FILE = "<the site file>"


def _text(edit):
    """A mutation of the site file's text (for what only the text can hold: duplicate keys, aliases, bytes)."""
    edit.on_text = True
    return edit


def _replace(old, new, count=1):
    return _text(lambda text: _once(text, old, new, count))


def _once(text, old, new, count):
    assert old in text, f"the base site has no {old!r}"
    return text.replace(old, new, count)


def _bomb(text):
    """The billion laughs: nine levels of nine aliases stand for 9**9 values."""
    lines = ['lol0: &lol0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"lol{i}: &lol{i} [{', '.join([f'*lol{i - 1}'] * 9)}]" for i in range(1, 10)]
    return text + "\n".join(lines) + "\n"


def _nested(depth):
    return _text(lambda text: text + "deep: " + "{a: " * depth + "1" + "}" * depth + "\n")


# (case id, base site, mutation, field, words of the message and the fix). A mutation is {field path: value} on the
# parsed site, or a _text() function of the file's text.
CASES = [
    # crashes that were Python errors
    ("vmid a list", "example-proxmox", {"hosts[0].vmid": [201]}, "hosts[0].vmid", ["must be an integer, not a list"]),
    ("kind a list", "example-proxmox", {"hosts[1].kind": ["vm"]}, "hosts[1].kind", ["not a list", "vm, baremetal"]),
    ("kind a mapping", "example-baremetal", {"hosts[0].kind": {"vm": 1}}, "hosts[0].kind", ["not a mapping"]),
    ("name a list", "demo", {"hosts[1].name": ["cp1"]}, "hosts[1].name", ["must be a string, not a list"]),
    ("metallb a list", "demo", {"metallb.addresses[0]": ["10.77.0.200"]}, "metallb.addresses[0]", ["not a list"]),
    ("latin-1 bytes", "example-proxmox", _text(lambda t: t.replace("rack", "caf\xe9").encode("latin-1")), FILE,
     ["not UTF-8 text", "byte 0xe9 on line", "save the file as UTF-8"]),
    ("control character", "demo", _replace("name: demo", "name: de\x01mo"), FILE,
     ["not valid YAML", "control characters are not allowed"]),
    ("nested too deep", "demo", _nested(100), "deep.a.a.a.a.a...", ["nests deeper than 64 levels", "flatten"]),
    ("lists nested past the parser", "demo", _text(lambda t: t + "deep: " + "[" * 5000 + "]" * 5000 + "\n"), FILE,
     ["not valid YAML", "nesting depth"]),
    ("alias to its own parent", "demo", _text(lambda t: t + "loop: &loop [1, *loop]\n"), "loop[1]",
     ["alias to a value that contains it", "write the value out"]),
    # silently accepted
    ("duplicate hosts", "example-proxmox", _replace("hosts:\n", "hosts: []\nhosts:\n"), "hosts",
     ["is given twice", "keep only the last", "keep one"]),
    ("duplicate ip", "example-proxmox", _replace("    ip: 192.168.10.31/24\n",
                                                 "    ip: 192.168.10.31/24\n    ip: 192.168.10.33/24\n"),
     "hosts[1].ip", ["is given twice (lines 57 and 58)"]),
    ("host named localhost", "example-proxmox", {"hosts[2].name": "localhost"}, "hosts[2].name",
     ["Ansible's name for the controller", "its own name"]),
    ("name with a newline", "example-proxmox", {"hosts[1].name": "worker1\n"}, "hosts[1].name",
     ["not in the expected form", "lower-case letters"]),
    ("domain with a newline", "demo", {"network.domain": "demo.lab\n"}, "network.domain", ["expected form"]),
    ("nas with a newline", "example-proxmox", {"nfs.server": "nas\n"}, "nfs.server", ["neither an IPv4 address"]),
    ("broadcast mac", "example-baremetal", {"hosts[0].mac": "ff:ff:ff:ff:ff:ff"}, "hosts[0].mac",
     ["is the broadcast address", "NIC's own MAC"]),
    ("multicast mac", "example-baremetal", {"hosts[1].mac": "01:00:5e:00:00:fb"}, "hosts[1].mac",
     ["is a multicast address", "NIC's own MAC"]),
    ("zero mac", "example-proxmox", {"hosts[0].mac": "00:00:00:00:00:00"}, "hosts[0].mac", ["all zeros"]),
    (".nan memory", "example-proxmox", _replace("memory: 8192", "memory: .nan"), "hosts[0].memory",
     ["must be an integer, not YAML's .nan or .inf", "MiB"]),
    (".inf cores", "demo", {"template.cores": float("inf")}, "template.cores", ["not a finite number"]),
    ("second ssh key", "example-proxmox", {"admin_ssh_keys[0]": f"{KEY} me\n{KEY} intruder"}, "admin_ssh_keys[0]",
     ["line break", "each key its own item"]),
    # paths that leave their directory
    ("token file outside", "example-proxmox", {"k3s.token_sops.file": "../x"}, "k3s.token_sops.file",
     ["leads out of its directory", "inside the site's directory"]),
    ("token file absolute", "demo", {"k3s.token_sops.file": "/etc/k3s.sops.yaml"}, "k3s.token_sops.file",
     ["absolute path", "inside the site's directory"]),
    ("proxmox secret file outside", "example-proxmox", {"proxmox.token_secret_sops.file": "secrets/../../x"},
     "proxmox.token_secret_sops.file", ["leads out of its directory"]),
    ("flux path outside", "example-proxmox", {"flux.path": "../../../x"}, "flux.path",
     ["leads out of its directory", "inside the repository"]),
    ("values outside", "example-proxmox", {"apps[0].values_sops": "../other/values.sops.yaml"}, "apps[0].values_sops",
     ["leads out of its directory", "inside the site's directory"]),
    # secrets inline, never echoed (CANARY must not be printed)
    ("password in proxmox.url", "example-proxmox", {"proxmox.url": f"https://root:{CANARY}@pve1:8006"}, "proxmox.url",
     ["password in a URL", "remove user:password@", "token_secret_env"]),
    ("password in a chart url", "example-proxmox", {"apps[0].repository": f"https://bot:{CANARY}@charts.x"},
     "apps[0].repository", ["password in a URL"]),
    ("k3s --token=", "example-proxmox", {"k3s.extra_args": [f"--token={CANARY}"]}, "k3s.extra_args[0]",
     ["K3s token flag", "k3s.token_sops"]),
    ("k3s --token apart", "demo", {"k3s.extra_args": ["--node-label=a=b", "--token", CANARY]}, "k3s.extra_args[1]",
     ["K3s token flag"]),
    ("github token in a description", "example-proxmox", {"site.description": f"rack {GITHUB_TOKEN}"},
     "site.description", ["GitHub token", "flux.token_env"]),
    ("github pat in chart values", "example-proxmox", {"apps[0].values.ui.message": f"github_pat_{CANARY}_1"},
     "apps[0].values.ui.message", ["GitHub token"]),
    ("github token as node", "example-proxmox", {"hosts[1].node": GITHUB_TOKEN}, "hosts[1].node", ["GitHub token"]),
    ("age key", "demo", {"sops.admin_recipients[0]": f"AGE-SECRET-KEY-1{CANARY.upper()}"}, "sops.admin_recipients[0]",
     ["age private key", "age-keygen -y"]),
    ("private key", "demo", {"admin_ssh_keys[0]": f"-----BEGIN OPENSSH PRIVATE KEY-----\n{CANARY}\n"},
     "admin_ssh_keys[0]", ["a private key", ".pub line"]),
    ("pve token", "demo", {"proxmox.pool": f"PVEAPIToken=root@pam!x={CANARY}"}, "proxmox.pool",
     ["Proxmox API token", "token_secret_env"]),
    # the keys backup: one way to encrypt, a public key
    ("backup without a key", "demo", {"backup.keys": {"dest": "/mnt/backup"}}, "backup.keys",
     ["neither recipient nor passphrase_env", "recovery key kept offline"]),
    ("backup with both keys", "demo", {"backup.keys": {"dest": "b", "recipient": RECIPIENT, "passphrase_env": "P"}},
     "backup.keys", ["both recipient and passphrase_env", "give one of them"]),
    ("backup to a private key", "demo",
     {"backup.keys": {"dest": "b", "recipient": f"AGE-SECRET-KEY-1{CANARY.upper()}"}},
     "backup.keys.recipient", ["age private key", "age-keygen -y"]),
    # hostile sizes
    ("alias bomb", "demo", _text(_bomb), "lol4[0]", ["aliases (*name) expand the file past", "write the values out"]),
    ("five megabytes", "demo", _text(lambda t: t + "# " + "x" * 5_000_000 + "\n"), FILE,
     [f"larger than {MAX_BYTES // 1024} KiB", "a few kilobytes"]),
]  # fmt: skip


def _set(data, field, value):
    """data[a][b][0]... = value for a field path as problems name it (hosts[0].vmid)."""
    keys = [int(k) if k.isdigit() else k for k in field.replace("[", ".").replace("]", "").split(".")]
    node = data
    for key in keys[:-1]:
        node = node[key] if isinstance(key, int) else node.setdefault(key, {})
    node[keys[-1]] = value


def _write(tmp_path, base, mutation):
    text = (REPO / "inventory" / base / "site.yml").read_text()
    if getattr(mutation, "on_text", False):
        text = mutation(text)
    else:
        data = yaml.safe_load(text)
        for field, value in mutation.items():
            _set(data, field, value)
        text = yaml.safe_dump(data, sort_keys=False)
    path = tmp_path / "site.yml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


@pytest.mark.parametrize(("base", "mutation", "field", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_refused_with_the_field_and_the_fix(tmp_path, base, mutation, field, words):
    path = _write(tmp_path, base, mutation)
    with pytest.raises(SiteError) as caught:
        load_site(str(path))
    field = str(path) if field == FILE else field
    found = [p for p in caught.value.problems if p.path == field]
    assert found, f"no problem at {field}; got: {caught.value}"
    said = f"{found[0].message}. Fix: {found[0].fix}"
    assert [w for w in words if w not in said] == [], said
    assert found[0].fix, "every problem says how to fix it"
    shown = str(caught.value) + json.dumps([p.as_dict() for p in caught.value.problems])
    assert CANARY not in shown and CANARY.upper() not in shown, "a secret is never echoed"


@pytest.mark.parametrize("base", ["example-proxmox", "example-baremetal", "demo"])
def test_the_shipped_sites_still_load_as_they_are(base):
    site = load_site(str(REPO / "inventory" / base / "site.yml"))
    assert site["hosts"], base


def test_the_limits_leave_room_for_a_real_site(tmp_path):
    """Aliases that add a few values, chart values a dozen levels deep and a file of 100 KiB still load."""
    text = (REPO / "inventory" / "example-proxmox" / "site.yml").read_text()
    text = text.replace("  dns: [192.168.10.1, 1.1.1.1]", "  dns: &dns [192.168.10.1, 1.1.1.1]")
    text = text.replace("services:\n      dns: {engine: blocky, upstreams: [1.1.1.1, 9.9.9.9]}",
                        "services:\n      dns: {engine: blocky, upstreams: *dns}")  # fmt: skip
    deep = "{a: " * 12 + "1" + "}" * 12
    text = text.replace("      replicaCount: 2\n", f"      replicaCount: 2\n      deep: {deep}\n")
    text += "# " + "padding " * (100 * 1024 // 8) + "\n"
    path = tmp_path / "site.yml"
    path.write_text(text)
    site = load_site(str(path))
    assert site["hosts"][0]["services"]["dns"]["upstreams"] == ["192.168.10.1", "1.1.1.1"]


@pytest.mark.parametrize("field", ["k3s.token_sops.file", "proxmox.token_secret_sops.file", "apps[0].values_sops"])
def test_a_site_file_behind_a_link_that_leads_out_is_refused(tmp_path, field):
    """A path may look inside the site's directory and still lead out through a symbolic link: runs would write
    there. Resolved, it must stay inside."""
    outside, site_dir = tmp_path / "elsewhere", tmp_path / "site"
    outside.mkdir()
    site_dir.mkdir()
    (outside / "x.sops.yaml").write_text("x: 1\n")
    os.symlink(outside, site_dir / "secrets")
    data = yaml.safe_load((REPO / "inventory" / "example-proxmox" / "site.yml").read_text())
    _set(data, field, "secrets/x.sops.yaml")
    (site_dir / "site.yml").write_text(yaml.safe_dump(data))
    with pytest.raises(SiteError) as caught:
        load_site(str(site_dir / "site.yml"))
    problem = next(p for p in caught.value.problems if p.path == field)
    assert "through a link, outside the site's directory" in problem.message
    assert "inside the site's directory" in problem.fix
    os.unlink(site_dir / "secrets")
    (site_dir / "secrets").mkdir()
    (site_dir / "secrets" / "x.sops.yaml").write_text("x: 1\n")
    assert load_site(str(site_dir / "site.yml"))["hosts"], "a real directory inside is fine"
