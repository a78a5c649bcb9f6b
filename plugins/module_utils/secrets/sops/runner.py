# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the sops modules do: sops_file's and sops_config's tasks; each task first checks that the crypto libraries
are there."""

from __future__ import annotations

import secrets
from functools import partial

from ansible_collections.nerv.homelab.plugins.module_utils.common.files import write_atomic
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.age import (
    SopsError,
    age_public,
    check_recipient,
    identities,
    new_age_identity,
    require_libraries,
)
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops import config, files
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops.document import Rules

# ---- sops_file ---------------------------------------------------------------------------------------------------


def file_task(module) -> dict:
    """nerv.homelab.sops_file: set, remove, generate, then updatekeys and rotate, as asked; none in check mode."""
    require_libraries()
    params = module.params
    if params["generate_bytes"] < 16:
        raise SopsError("generate_bytes must be at least 16")
    if params["rotate"] and (params["values"] or params["remove"] or params["generate"]):
        raise SopsError("rotate changes the data key only: run it in a task of its own, without values/remove/generate")
    ids = identities(params)
    path, fmt = params["path"], params["format"]
    values = files.flatten_values(params["values"])
    steps = []
    if values or params["remove"] or params["generate"] or not (params["updatekeys"] or params["rotate"]):
        rules = Rules("encrypted_regex", params["encrypted_regex"]) if params["encrypted_regex"] else None
        age = params["generate_type"] == "age_identity"
        token = new_age_identity if age else partial(secrets.token_urlsafe, params["generate_bytes"])
        step = files.plan_values(
            path, ids, values, params["remove"], params["recipients"], rules, fmt, params["generate"],
            token, age_public if age else None, params["config"],
        )  # fmt: skip
        steps.append(_apply(module, step))
    # a file created just now is already encrypted to the rule's recipients
    if params["updatekeys"] and not (steps and steps[0].created):
        rekey = files.plan_updatekeys(path, ids, params["recipients"], fmt, params["config"])
        steps.append(_apply(module, rekey))
    if params["rotate"]:
        steps.append(_apply(module, files.plan_rotate(path, ids, fmt)))
    result = _result(steps)
    if params["generate_type"] == "age_identity" and params["generate"]:
        result["public"] = steps[0].public  # the values step, which comes first whenever generate is given
    return result


def _apply(module, step):
    if step.changed and not module.check_mode:
        step.apply()
    return step


def _result(steps) -> dict:
    first, last = steps[0], steps[-1]
    return {
        "changed": any(s.changed for s in steps),
        "path": last.path,
        "created": first.created,
        "keys": last.keys,
        "changed_keys": list(dict.fromkeys(k for s in steps for k in s.changed_keys)),
        "recipients": last.after_recipients,
        "diff": {**first.diff(), "after": last.diff()["after"]},
    }


# ---- sops_config -------------------------------------------------------------------------------------------------


HEADER = (
    "Written by nerv.homelab.sops_config from the site file: edit the site (sops.admin_recipients, hosts),\n"
    "not this file. First matching rule wins."
)


def admin_identity(params: dict) -> str:
    admins = {check_recipient(a) for a in params["admin_recipients"]}
    for identity in identities(params):
        if identity.public in admins:
            return identity.source
    raise SopsError(
        "no age identity of the site's admins is available here, so no secret can be read or re-keyed. Make one with "
        "`age-keygen -o ~/.config/sops/age/keys.txt` (or point SOPS_AGE_KEY_FILE at yours) and put its public key "
        f"(age1...) in sops.admin_recipients of the site file (fleet_admin_recipients for a flake's fleet); the "
        f"admins listed are: {', '.join(sorted(admins))}"
    )


def config_task(module) -> dict:
    """nerv.homelab.sops_config: the site's .sops.yaml rendered from its rules, written only when it differs."""
    require_libraries()
    params = module.params
    found = {"admin_identity": admin_identity(params)} if params["require_identity"] else {}
    host_dir = params["host_dir"].strip("/")
    if not host_dir:
        raise SopsError("host_dir must name a directory, e.g. secrets/hosts")
    rules = config.site_rules(
        params["admin_recipients"], params["hosts"], params["shared"], host_dir, params["admin_only"]
    )
    text = config.render(rules, HEADER)
    before = files.read_text(params["path"]) or ""
    changed = before != text
    # every re-key planned (each file opened) before anything is written: a file no admin opens changes nothing
    rekeys = files.plan_rekeys(params.get("rekey") or [], rules, params["path"], lambda: identities(params))
    if not module.check_mode:
        if changed:
            write_atomic(params["path"], text, mode=0o644)
        for plan in rekeys:
            plan.apply()
    return {
        **found,
        "changed": changed or bool(rekeys),
        "path": params["path"],
        "rules": rules,
        "rekeyed": [plan.path for plan in rekeys],
        "diff": {"before_header": params["path"], "after_header": params["path"], "before": before, "after": text},
    }
