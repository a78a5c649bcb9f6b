# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Secrets written into a site file: the file is committed and its values are printed, so a secret found anywhere
in it is refused, named by its field and where it belongs, and never echoed."""

from __future__ import annotations

import re

from ansible_collections.nerv.homelab.plugins.module_utils.site.problems import Problem

# Keys that hold a secret when they appear in a site file
SECRET_KEY = re.compile(r"(secret|password|passwd|passphrase|private_?key|api_?key|token)$", re.IGNORECASE)
_ELSEWHERE = "proxmox.token_secret_env, proxmox.token_secret_sops"
# (the shape of a secret value, what it is, where such a secret belongs): one row per kind, to grow with new kinds
SHAPES = (
    (r"[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@", "a password in a URL, user:password@",
     "remove user:password@ from the URL; credentials come from the environment variable or sops file the site "
     f"names ({_ELSEWHERE}, an app's values_sops)"),
    (r"\bgh[pousr]_[A-Za-z0-9]{20,}|\bgithub_pat_[A-Za-z0-9_]{20,}", "a GitHub token",
     "delete it and export the token in the environment variable flux.token_env names (GITHUB_TOKEN by default)"),
    (r"AGE-SECRET-KEY-1", "an age private key",
     "delete it; keep it in your age key file (SOPS_AGE_KEY_FILE) and list its public key (age-keygen -y) in "
     "sops.admin_recipients"),
    (r"-----BEGIN [A-Z ]*PRIVATE KEY-----", "a private key",
     "delete it; a private key stays on its machine (~/.ssh): admin_ssh_keys takes the .pub line"),
    (r"PVEAPIToken=", "a Proxmox API token",
     f"delete it; give the token secret through {_ELSEWHERE}"),
    (r"(?:^|\s)--(?:agent-)?token(?:[=\s]|$)", "a K3s token flag (--token)",
     "delete it; the cluster token is kept sops-encrypted in the file k3s.token_sops names (the keys phase makes it)"),
)  # fmt: skip
_COMPILED = [(re.compile(shape), what, fix) for shape, what, fix in SHAPES]
_SHOWN = "(secret not shown)"


def secret_shape(value) -> tuple | None:
    """(what it is, where it belongs) when value is a string shaped like a secret, else None."""
    if isinstance(value, str):
        for shape, what, fix in _COMPILED:
            if shape.search(value):
                return what, fix
    return None


def inline_secret(path: str, value=None) -> Problem:
    """The problem of a secret found at path: by its shape when it has one, else because of its key's name."""
    what, fix = secret_shape(value) or ("", "delete it from the file; give the secret through the environment "
                                            f"variable or sops file named in the site (e.g. {_ELSEWHERE})")  # fmt: skip
    kind = f"{what}; " if what else ""
    return Problem(path, f"a secret is written inline in the site file ({kind}its value is not shown)", fix)


def secret_values(value) -> set:
    """Every string in a site that is a secret (under a secret-named key or shaped like one), to mask in output."""
    if isinstance(value, dict):
        found = set()
        for key, item in value.items():
            if isinstance(key, str) and SECRET_KEY.search(key) and isinstance(item, (str, int, float)):
                found.add(str(item))
            else:
                found |= secret_values(item)
        return found
    if isinstance(value, list):
        return set().union(*(secret_values(item) for item in value)) if value else set()
    return {value} if secret_shape(value) else set()


def masked(problems: list, secrets: set) -> list:
    """The problems with every secret-shaped value taken out of their texts: a check that quotes a value it finds
    wrong (a node name, a duplicate) must not print a secret the schema walk already refused."""
    shown = [s for s in secrets if secret_shape(s)]
    if not shown:
        return problems
    forms = {form for s in shown for form in (s, repr(s))}
    out = []
    for problem in problems:
        message, fix = problem.message, problem.fix
        for form in sorted(forms, key=len, reverse=True):
            message, fix = message.replace(form, _SHOWN), fix.replace(form, _SHOWN)
        out.append(Problem(problem.path, message, fix, problem.level))
    return out
