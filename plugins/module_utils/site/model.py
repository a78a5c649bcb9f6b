# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The site model: load a site file, report every problem in it at once, fill in defaults, plan the phases.

This is the Python API the modules, roles and inventory plugins of nerv.homelab share:

    site = load_site("inventory/home/site.yml")   # raises SiteError listing every problem
    report = validate_site(data)                  # Report(errors, warnings), never raises
"""

from __future__ import annotations

import copy
import difflib
import math
import os
import re

from ansible_collections.nerv.homelab.plugins.module_utils.site.checks import app_host, file_problems, semantic_problems
from ansible_collections.nerv.homelab.plugins.module_utils.site.formats import FORMATS
from ansible_collections.nerv.homelab.plugins.module_utils.site.inline_secrets import (
    SECRET_KEY,
    inline_secret,
    masked,
    secret_shape,
    secret_values,
)
from ansible_collections.nerv.homelab.plugins.module_utils.site.problems import Problem, Report, SiteError, join_path
from ansible_collections.nerv.homelab.plugins.module_utils.site.reader import read_site_file
from ansible_collections.nerv.homelab.plugins.module_utils.site.schema import SITE_SCHEMA

_TYPE_NAMES = {"object": "a mapping", "array": "a list", "string": "a string", "integer": "an integer"}
_TYPE_NAMES.update(boolean="true or false", number="a decimal number")


def _json_type(value) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    for name, kind in (("object", dict), ("array", list), ("string", str), ("number", float)):
        if isinstance(value, kind):
            return name
    return "null" if value is None else type(value).__name__


def _resolve(schema: dict) -> dict:
    ref = schema.get("$ref")
    if not ref:
        return schema
    resolved = dict(SITE_SCHEMA["$defs"][ref.rsplit("/", 1)[1]])
    resolved.update((k, v) for k, v in schema.items() if k != "$ref")
    return resolved


def _walk(value, schema: dict, path: str, out: list) -> None:
    schema = _resolve(schema)
    if secret_shape(value):
        out.append(inline_secret(path, value))
        return
    expected = schema.get("type")
    # A list of types (hosts[].nfs: false or a mapping) takes the value's own type when it is one of them
    allowed = expected if isinstance(expected, list) else [expected]
    if expected and _json_type(value) not in allowed:
        found = _shown_type(value)
        wanted = " or ".join(_TYPE_NAMES[kind] for kind in allowed)
        out.append(Problem(path, f"must be {wanted}, not {found}", _fix(schema)))
        return
    if isinstance(expected, list):
        expected = _json_type(value)
    if "enum" in schema and value not in schema["enum"]:
        choices = ", ".join(str(c) for c in schema["enum"])
        out.append(Problem(path, f"is {value!r}, not one of {choices}", _fix(schema)))
        return
    checker = {"object": _walk_object, "array": _walk_array, "string": _check_string, "integer": _check_integer}
    if expected in checker:
        checker[expected](value, schema, path, out)


def _shown_type(value) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return "YAML's .nan or .inf (not a finite number)"
    return _TYPE_NAMES.get(_json_type(value), _json_type(value))


def _fix(schema: dict) -> str:
    if "enum" in schema and "x-fix" not in schema:
        return "use one of: " + ", ".join(str(c) for c in schema["enum"])
    return schema.get("x-fix") or schema.get("description") or "see docs/site.md"


# In free-form chart values (apps[].values) these names hold a password; other secret-sounding names there
# (existingSecret, automountServiceAccountToken) name or switch something, so only these are refused
_VALUES_SECRET_KEY = re.compile(r"(password|passwd|passphrase)$", re.IGNORECASE)


def _walk_free(value, path: str, out: list) -> None:
    """A mapping of any keys (chart values): only looked through for secrets, which belong in values_sops."""
    if isinstance(value, dict):
        for key, item in value.items():
            where = join_path(path, key)
            if isinstance(key, str) and _VALUES_SECRET_KEY.search(key) and isinstance(item, str) and item:
                msg = "a password is written inline in the site file (its value is not shown)"
                fix = "delete it here and put it in the app's values_sops file (sops-encrypted), see docs/site.md"
                out.append(Problem(where, msg, fix))
            else:
                _walk_free(item, where, out)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _walk_free(item, join_path(path, index), out)
    elif secret_shape(value):
        out.append(inline_secret(path, value))


def _walk_object(value: dict, schema: dict, path: str, out: list) -> None:
    if "properties" not in schema and schema.get("additionalProperties", True) is not False:
        _walk_free(value, path, out)
        return
    properties = schema.get("properties", {})
    for key in schema.get("required", []):
        if key not in value:
            sub = _resolve(properties[key])
            what = sub.get("description") or _TYPE_NAMES.get(sub.get("type"), "a value")
            out.append(Problem(join_path(path, key), "is required but missing", f"add {key}: {what}"))
    for key, item in value.items():
        if key in properties:
            _walk(item, properties[key], join_path(path, key), out)
        elif isinstance(key, str) and SECRET_KEY.search(key):
            out.append(inline_secret(join_path(path, key)))
        else:
            out.append(_unknown_key(key, properties, path))


def _unknown_key(key, properties: dict, path: str) -> Problem:
    close = difflib.get_close_matches(str(key), list(properties), n=1, cutoff=0.6)
    fix = f"did you mean {close[0]!r}?" if close else "remove it."
    return Problem(join_path(path, key), "is not a known key", fix + " Known keys here: " + ", ".join(properties))


def _walk_array(value: list, schema: dict, path: str, out: list) -> None:
    if len(value) < schema.get("minItems", 0):
        out.append(Problem(path, "needs at least {} item(s)".format(schema["minItems"]), _fix(schema)))
    if schema.get("uniqueItems"):
        seen = [item for i, item in enumerate(value) if item in value[:i]]
        for item in seen:
            out.append(Problem(path, f"lists {item!r} more than once", "keep one of each"))
    for index, item in enumerate(value):
        _walk(item, schema.get("items", {}), join_path(path, index), out)


def _check_string(value: str, schema: dict, path: str, out: list) -> None:
    shown = value if len(value) <= 80 else value[:77] + "..."
    if len(value) < schema.get("minLength", 0):
        out.append(Problem(path, "is empty", _fix(schema)))
    # fullmatch: with re.search or re.match the pattern's $ also matches before a trailing newline
    elif "pattern" in schema and not re.fullmatch(schema["pattern"], value):
        out.append(Problem(path, f"{shown!r} is not in the expected form", _fix(schema)))
    elif "format" in schema:
        problem = FORMATS[schema["format"]](value)
        if problem:
            out.append(Problem(path, f"{shown!r} {problem}", _fix(schema)))


def _check_integer(value: int, schema: dict, path: str, out: list) -> None:
    low, high = schema.get("minimum"), schema.get("maximum")
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"from {low} to {high}" if high is not None else f"at least {low}"
        out.append(Problem(path, f"is {value}, must be {bounds}", _fix(schema)))


def validate_site(data, base_dir: str | None = None) -> Report:
    """Every problem of a parsed site file, errors and warnings apart; never raises. With base_dir (the site file's
    directory) the files the site names are checked too."""
    problems: list = []
    _walk(data, SITE_SCHEMA, "", problems)
    if isinstance(data, dict):
        problems.extend(semantic_problems(data))
        if base_dir is not None:
            problems.extend(file_problems(data, base_dir))
    problems = masked(_dedupe(problems), secret_values(data))
    return Report(
        errors=[p for p in problems if p.level == "error"],
        warnings=[p for p in problems if p.level == "warning"],
    )


def _dedupe(problems: list) -> list:
    first: dict = {}
    for problem in problems:
        first.setdefault((problem.path, problem.message), problem)
    return list(first.values())


def _apply_defaults(value, schema: dict):
    schema = _resolve(schema)
    if isinstance(value, dict) and schema.get("type") == "object":
        for key, sub in schema.get("properties", {}).items():
            sub = _resolve(sub)
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                value[key] = _apply_defaults(value[key], sub)
    elif isinstance(value, list) and schema.get("type") == "array":
        return [_apply_defaults(item, schema.get("items", {})) for item in value]
    return value


def normalise_site(data: dict) -> dict:
    """A valid site with every default filled in; VM sizes default to the template's."""
    site = _apply_defaults(copy.deepcopy(data), SITE_SCHEMA)
    template = site.get("template", {})
    for host in site["hosts"]:
        if host["kind"] == "vm":
            for key in ("cores", "memory", "disk"):
                host.setdefault(key, template.get(key))
        host["address"] = host["ip"].split("/", 1)[0]
    for app in site.get("apps", []):
        _normalise_app(app, site["network"]["domain"])
    return site


def _normalise_app(app: dict, domain: str) -> None:
    """An app's namespace and ingress service default to its name; a bare ingress host joins the site's domain."""
    app.setdefault("namespace", app["name"])
    ingress = app.get("ingress")
    if ingress:
        ingress.setdefault("service", app["name"])
        ingress["host"] = app_host(ingress["host"], domain)


def parse_site(data, base_dir: str | None = None) -> dict:
    """Validate parsed site data; return it normalised, or raise SiteError with every problem."""
    report = validate_site(data, base_dir)
    if report.errors:
        raise SiteError(report.errors, report.warnings)
    site = normalise_site(data)
    site["_warnings"] = [p.as_dict() for p in report.warnings]
    return site


def load_site(path: str) -> dict:
    """Read, validate and normalise a site file; SiteError lists every problem."""
    return parse_site(read_site_file(path), os.path.dirname(os.path.abspath(path)))


def site_plan(site: dict) -> list:
    """The phases site.yml runs for this site, in order, each saying whether it exists yet."""
    vms = [h["name"] for h in site["hosts"] if h["kind"] == "vm"]
    everyone = [h["name"] for h in site["hosts"]]
    template = site.get("template") or {}
    flux = site["flux"]
    image = ["{} ({}) on {}".format(template.get("name"), template.get("vmid"), template.get("node"))]
    git = ["{}/{} {}@{}".format(flux["owner"], flux["repository"], flux["path"], flux["branch"])]
    # Each phase is a play (or plays) of playbooks/site.yml tagged with its name. Hosts are found by the inventory
    # sources (nerv.homelab.proxmox, nerv.homelab.site), not by a phase.
    phases = [
        ("validate", "Validate the site file and report every problem at once", ["localhost"]),
        ("keys", "Per-host SSH/age keys, .sops.yaml, the K3s token, the cluster's Flux key", everyone),
        ("template", "Build the NixOS installer ISO and make the Proxmox template", vms and image),
        ("vms", "Clone the VMs with cloud-init, wait for their addresses, record their keys", vms),
        ("install", "Install NixOS: bare metal with nixos-anywhere, VMs with nixos-rebuild", everyone),
        ("bootstrap", "Nodes Ready, the platform pushed to Git, Flux bootstrapped and Ready", git),
    ]
    # every phase is implemented now; implemented and tracked_in stay in the result its readers know
    return [
        {"phase": name, "summary": summary, "targets": targets, "implemented": True, "tracked_in": None}
        for name, summary, targets in phases
        if targets
    ]
