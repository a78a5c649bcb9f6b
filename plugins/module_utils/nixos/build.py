# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The logic of nerv.homelab.nix_build: input checks, nix argv, --json parsing, the state record, logs, the ISO.

Commands are argv lists, never a shell. Works with Nix 2.8 (no --print-out-paths: `nix build --json` prints
[{"drvPath": ..., "outputs": {"out": ...}}] there and in every later release) and newer.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import shlex
import tempfile
import time
from urllib.parse import parse_qs

from ansible_collections.nerv.homelab.plugins.module_utils.common import process
from ansible_collections.nerv.homelab.plugins.module_utils.common.cache import cache_path
from ansible_collections.nerv.homelab.plugins.module_utils.common.digest import sha256_file
from ansible_collections.nerv.homelab.plugins.module_utils.common.files import write_atomic
from ansible_collections.nerv.homelab.plugins.module_utils.nixos.nix import NIX_FEATURES, NixError, flake_ref

LOG_TAIL_LINES = 30
STATE_VERSION = 1
# What `nix eval` prints in check mode: the derivation and every output path nix build would give.
EVAL_APPLY = (
    "d: { drvPath = d.drvPath or null; outputs = builtins.listToAttrs (map (o: { name = o; "
    'value = (d.${o} or d).outPath; }) (d.outputs or [ "out" ])); }'
)
# Options the module sets itself: in extra_args they would fight the module's own.
RESERVED_ARGS = {
    "--json": "the module always asks for --json",
    "--out-link": "use the out_link option",
    "-o": "use the out_link option",
    "--no-link": "leave out out_link to keep no link",
    "--print-out-paths": "the module reads --json, which every Nix release has",
    "--dry-run": "run the task in check mode instead",
    "--store": "use the store option",
    "--extra-experimental-features": "the module always enables nix-command and flakes",
}

_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:")
_ATTR_NAME = r"[A-Za-z0-9_][A-Za-z0-9_'+-]*"
_ATTRIBUTE = re.compile(rf"^{_ATTR_NAME}(?:\.{_ATTR_NAME})*$")
# The iso option's words: a YAML boolean arrives as a bool, "auto" or a quoted "yes" as a string.
_ISO_MODES = {
    "auto": "auto",
    **dict.fromkeys(("true", "yes", "on", "1"), True),
    **dict.fromkeys(("false", "no", "off", "0"), False),
}


# --- input checks: each names the option and the fix, before anything runs ---------------------------------


def normalize_flake(flake) -> str:
    """A flake reference for nix: a local directory becomes path:<absolute dir> so no git is needed."""
    text = str(flake or "").strip()
    if not text:
        raise NixError("flake: empty; give a flake directory (absolute path) or a reference such as path:/srv/flake")
    if "#" in text:
        raise NixError(f"flake: {text!r} holds '#'; use the attribute option for what follows '#'")
    if re.search(r"[\s\x00-\x1f\x7f]", text):
        raise NixError(f"flake: {text!r} holds whitespace or control characters; give a directory or flake reference")
    if text.startswith("path:"):
        directory = text[len("path:") :].split("?", maxsplit=1)[0]
        if not os.path.isabs(directory):
            raise NixError(f"flake: {text!r} names a relative directory; path: references need an absolute path")
    elif _SCHEME.match(text):
        return text  # git+file:, github:, ... nix checks those itself
    else:
        directory = os.path.expanduser(text)
        if not os.path.isabs(directory):
            raise NixError(
                f"flake: {text!r} is a relative path; give an absolute one "
                f"(for example '{{{{ playbook_dir }}}}/{text}') or a reference such as path:/srv/flake"
            )
    if not os.path.isdir(directory):
        raise NixError(f"flake: directory {directory} does not exist; give the directory that holds flake.nix")
    if not os.path.isfile(os.path.join(directory, "flake.nix")):
        raise NixError(f"flake: {directory} has no flake.nix; give the directory that holds flake.nix")
    return flake_ref(text)


def check_attribute(attribute) -> str:
    """A dot-separated flake attribute path such as packages.x86_64-linux.default."""
    text = str(attribute or "")
    if not _ATTRIBUTE.fullmatch(text):
        raise NixError(
            f"attribute: {text!r} is not a flake attribute path; use dot-separated names of letters, digits, "
            "_, -, + and ' (for example packages.x86_64-linux.default or "
            "nixosConfigurations.installer.config.system.build.isoImage)"
        )
    return text


def check_extra_args(extra_args) -> list:
    """extra_args as strings; refuses the options the module sets itself and characters no argument needs."""
    checked = []
    for arg in extra_args or []:
        text = str(arg)
        if "\x00" in text or "\n" in text:
            raise NixError(f"extra_args: {text!r} holds a NUL or newline; give each argument as one list item")
        name = text.split("=", maxsplit=1)[0]
        if name in RESERVED_ARGS:
            raise NixError(f"extra_args: {name} is not allowed here: {RESERVED_ARGS[name]}")
        checked.append(text)
    return checked


def check_iso(value) -> object:
    """'auto', True or False from the iso option (a bool, or a string such as auto/yes/no)."""
    if isinstance(value, bool):
        return value
    mode = _ISO_MODES.get(str(value if value is not None else "auto").strip().lower())
    if mode is None:
        raise NixError(f"iso: {value!r} is not one of auto, true, false")
    return mode


def check_timeout(timeout):
    if timeout is not None and timeout <= 0:
        raise NixError(
            f"timeout: {timeout} is not a positive number of seconds; give one, or leave timeout out for no limit"
        )
    return timeout


def check_store(store):
    """store as given (None: nix's default) and, for a local store under another root, that root."""
    if store is None or str(store) == "":
        return None, None
    text = str(store)
    if re.search(r"[\s\x00-\x1f\x7f]", text):
        raise NixError(f"store: {text!r} holds whitespace or control characters; give a store URL or a directory")
    if text.startswith("/"):
        return text, text
    if text.startswith(("local?", "local://?")):
        roots = parse_qs(text.split("?", maxsplit=1)[1]).get("root")
        return text, (roots[0] if roots else None)
    return text, None


def check_out_link(out_link):
    if not out_link:
        return None
    if not os.path.isabs(out_link):
        raise NixError(f"out_link: {out_link!r} is relative; give an absolute path")
    if os.path.lexists(out_link) and not os.path.islink(out_link):
        raise NixError(f"out_link: {out_link} exists and is not a symlink; remove it or choose another path")
    return out_link


# --- argv ---------------------------------------------------------------------------------------------------


def build_argv(nix: str, target: str, out_link=None, extra_args=(), store=None) -> list:
    """nix build printing --json, with full build logs (-L) on stderr and a link only when out_link is set."""
    argv = [nix, *NIX_FEATURES, "build", target, "--json", "--print-build-logs"]
    argv += ["--out-link", out_link] if out_link else ["--no-link"]
    if store:
        argv += ["--store", store]
    return argv + list(extra_args)


def eval_argv(nix: str, target: str, extra_args=(), store=None) -> list:
    """nix eval of the derivation and output paths nix build would give, without building."""
    argv = [nix, *NIX_FEATURES, "eval", target, "--json", "--apply", EVAL_APPLY]
    if store:
        argv += ["--store", store]
    return argv + list(extra_args)


# --- nix output ------------------------------------------------------------------------------------------------


def _loads(text: str, command: str):
    try:
        return json.loads(text)
    except ValueError as exc:
        raise NixError(f"{command} printed no JSON ({exc}): {text[:200]!r}") from None


def parse_build_json(text: str):
    """(drv_path, {output: store path}) from `nix build --json` (2.8: [{"drvPath", "outputs"}], later the same
    plus startTime/stopTime; a store path installable gives [{"path"}])."""
    data = _loads(text, "nix build")
    entries = data if isinstance(data, list) else [data]
    drv_path, outputs = None, {}
    for entry in entries:
        if not isinstance(entry, dict):
            raise NixError(f"nix build --json: unexpected entry {entry!r}")
        drv_path = drv_path or entry.get("drvPath")
        found = entry.get("outputs")
        if isinstance(found, dict):
            outputs.update({str(name): str(path) for name, path in found.items() if path})
        elif entry.get("path"):
            outputs.setdefault("out", str(entry["path"]))
    if not outputs:
        raise NixError(f"nix build --json named no output path: {text[:200]!r}")
    return drv_path, outputs


def parse_eval_json(text: str):
    """(drv_path, {output: store path}) from `nix eval --json ... --apply EVAL_APPLY`."""
    data = _loads(text, "nix eval")
    if not isinstance(data, dict) or not isinstance(data.get("outputs"), dict) or not data["outputs"]:
        raise NixError(f"nix eval: the attribute is not a derivation with outputs: {text[:200]!r}")
    return data.get("drvPath"), {str(name): str(path) for name, path in data["outputs"].items()}


def main_output(outputs: dict):
    if not outputs:
        return None
    return outputs.get("out") or outputs[sorted(outputs)[0]]


# --- state record ------------------------------------------------------------------------------------------------


def default_state_file(flake: str, attribute: str, environ=None) -> str:
    """<hash of flake#attribute>.json in $XDG_CACHE_HOME/nerv-homelab/nix_build (~/.cache when it is not set)."""
    key = hashlib.sha256(f"{flake}#{attribute}".encode()).hexdigest()[:24]
    return os.path.join(cache_path("nix_build", environ), key + ".json")


def default_log_file(state_file: str) -> str:
    root = state_file[: -len(".json")] if state_file.endswith(".json") else state_file
    return root + ".log"


def read_state(path: str):
    """The last record, or None when there is none or it cannot be read (then the next build counts as changed)."""
    try:
        with open(path, encoding="utf-8") as handle:
            record = json.load(handle)
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("outputs"), dict):
        return None
    return record


def make_record(flake, attribute, drv_path, outputs, iso=None) -> dict:
    return {
        "version": STATE_VERSION,
        "flake": flake,
        "attribute": attribute,
        "drv_path": drv_path,
        "outputs": dict(outputs),
        "iso": iso,
    }


def write_state(path: str, record: dict) -> None:
    """Write the record atomically (common/files.write_atomic)."""
    write_atomic(path, json.dumps(record, indent=2, sort_keys=True) + "\n")


def outputs_changed(record, outputs: dict) -> bool:
    """True when there is no record or any output path differs from the recorded one."""
    return record is None or record.get("outputs") != outputs


def would_change(record, evaluated: dict) -> bool:
    """Check mode: True when there is no record or a recorded output would get another path."""
    return record is None or any(evaluated.get(name) != path for name, path in record["outputs"].items())


def would_build_outputs(record, evaluated: dict) -> dict:
    """The outputs check mode reports: the recorded output names when there is a record, else all of them."""
    if record:
        names = [name for name in record["outputs"] if name in evaluated]
        if names:
            return {name: evaluated[name] for name in names}
    return dict(evaluated)


# --- files: log tail, sha256, ISO ------------------------------------------------------------------------------------


def tail_lines(stream, count: int = LOG_TAIL_LINES, block: int = 8192) -> list:
    """The last count lines of a binary file object, read backwards in blocks: never the whole file."""
    stream.seek(0, os.SEEK_END)
    position = stream.tell()
    data = b""
    while position > 0 and data.count(b"\n") <= count:
        step = min(block, position)
        position -= step
        stream.seek(position)
        data = stream.read(step) + data
    lines = data.decode("utf-8", "replace").splitlines()
    return lines[-count:] if count > 0 else []


def log_tail(path, count: int = LOG_TAIL_LINES) -> list:
    try:
        with open(path, "rb") as stream:
            return tail_lines(stream, count)
    except OSError:
        return []


# A failure of the machine rather than the flake: Debian's nix-bin without the group its builds run as.
_NO_BUILD_USERS = (
    "the build users group is missing: on Debian install nix-setup-systemd (it creates nixbld and its users), "
    "or set build-users-group to an existing group in /etc/nix/nix.conf"
)


def failure_hint(tail: list) -> str:
    """'; Fix: ...' for a log tail that shows a known machine problem, else ''."""
    text = "\n".join(tail)
    return f"; Fix: {_NO_BUILD_USERS}" if "build-users-group" in text and "does not exist" in text else ""


# What nix prints when it cannot reach the source of a flake input (no network, no DNS, the host down): check mode
# then cannot evaluate, which says nothing about the flake itself.
_FETCH_FAILED = ("unable to download", "Couldn't resolve host", "Could not resolve host", "Failed to connect to")


def fetch_failure(tail: list):
    """What nix said last about an input it could not fetch (its final error, not a retry), or None."""
    found = [line.strip() for line in tail if any(sign in line for sign in _FETCH_FAILED)]
    return re.sub(r"^(warning: )?error: ", "", found[-1]) if found else None


def on_disk(store_path: str, root=None) -> str:
    """Where a store path is on this machine: under root for a local store kept in another directory."""
    return os.path.join(root, store_path.lstrip("/")) if root else store_path


def find_isos(outputs: dict, root=None) -> list:
    """Every ISO image of the outputs: <output>/iso/*.iso (NixOS isoImage), or an output that is itself *.iso."""
    found = []
    for name in sorted(outputs):
        path = on_disk(outputs[name], root)
        if os.path.isfile(path) and path.endswith(".iso"):
            found.append(path)
        found.extend(sorted(glob.glob(os.path.join(glob.escape(path), "iso", "*.iso"))))
    return found


def iso_info(path: str, recorded=None) -> dict:
    """{path, size, sha256} of an ISO; the recorded sha256 is kept when path and size match (store paths never
    change once built), so an unchanged ISO is not hashed again."""
    size = os.path.getsize(path)
    same = isinstance(recorded, dict) and recorded.get("path") == path and recorded.get("size") == size
    return {"path": path, "size": size, "sha256": (same and recorded.get("sha256")) or sha256_file(path)}


def pick_iso(mode, outputs: dict, root=None, recorded=None, required_ok=True):
    """The iso result for the iso option: None when off or (auto) none found; NixError when true and none found."""
    if mode is False:
        return None
    isos = find_isos(outputs, root)
    if not isos:
        if mode is True and required_ok:
            where = ", ".join(on_disk(path, root) for path in outputs.values())
            raise NixError(f"iso: true, but no iso/*.iso in the outputs ({where}); set iso: auto or false")
        return None
    return iso_info(isos[0], recorded)


# --- running nix ---------------------------------------------------------------------------------------------------


def run_build(argv: list, log_stream, timeout=None):
    """Run nix with stderr streamed to log_stream (a binary file) and stdout captured; (rc, stdout text). Past
    timeout its group is stopped and NixError raised."""
    command = " ".join(arg for arg in argv[3:5] if not arg.startswith("-"))
    late = f"timed out after {timeout} s: nix {command}; raise timeout or leave it out"
    done = process.run(argv, timeout, stderr=log_stream, error=NixError, late=late)
    return done.rc, done.stdout


class Request:
    """The checked options of one nix_build task."""

    def __init__(self, params: dict, environ=None):
        self.flake = normalize_flake(params.get("flake"))
        self.attribute = check_attribute(params.get("attribute"))
        self.extra_args = check_extra_args(params.get("extra_args"))
        self.iso = check_iso(params.get("iso"))
        self.timeout = check_timeout(params.get("timeout"))
        self.store, self.store_root = check_store(params.get("store"))
        self.out_link = check_out_link(params.get("out_link"))
        self.state_file = params.get("state_file") or default_state_file(self.flake, self.attribute, environ)
        self.log_file = params.get("log_file") or default_log_file(self.state_file)
        for option, path in (("state_file", self.state_file), ("log_file", self.log_file)):
            if not os.path.isabs(path):
                raise NixError(f"{option}: {path!r} is relative; give an absolute path")
        if os.path.isdir(self.state_file) or os.path.isdir(self.log_file):
            raise NixError("state_file and log_file must be files, not directories; give file paths")

    @property
    def target(self) -> str:
        return f"{self.flake}#{self.attribute}"


def _result(request: Request, record, argv: list, drv_path, outputs: dict, **fields) -> dict:
    """What every run reports; fields are what a build, a check and a check that cannot evaluate set apart."""

    def lines(found):
        return "".join(f"{name}: {path}\n" for name, path in sorted((found or {}).items()))

    previous = dict(record["outputs"]) if record else None
    return {
        "flake": request.flake,
        "attribute": request.attribute,
        "installable": request.target,
        "state_file": request.state_file,
        "previous_outputs": previous,
        "drv_path": drv_path,
        "outputs": outputs,
        "out_path": main_output(outputs),
        "log_file": None,
        "out_link": None,
        "cmd": argv,
        "diff": {"before": lines(previous), "after": lines(outputs)},
        **fields,
    }


def check(request: Request, nix: str) -> dict:
    """Check mode: evaluates what nix build would give and compares it with the record; builds and writes nothing."""
    record = read_state(request.state_file)
    argv = eval_argv(nix, request.target, request.extra_args, request.store)
    with tempfile.TemporaryFile() as log:
        rc, stdout = run_build(argv, log, request.timeout)
        tail = tail_lines(log)
    if rc != 0:
        unfetched = fetch_failure(tail)
        if unfetched:
            return unevaluated(request, record, argv, unfetched)
        message = f"nix eval of {request.attribute} (check mode) failed with exit code {rc}{failure_hint(tail)}"
        raise NixError(message, rc=rc, log_tail=tail, cmd=argv)
    drv_path, evaluated = parse_eval_json(stdout)
    outputs = would_build_outputs(record, evaluated)
    # Already in the store: report the ISO (hashing only reads); not there yet: nothing to report.
    present = all(os.path.exists(on_disk(path, request.store_root)) for path in outputs.values())
    recorded_iso = (record or {}).get("iso")
    iso = pick_iso(request.iso, outputs, request.store_root, recorded_iso, required_ok=False) if present else None
    changed = would_change(record, evaluated)
    return _result(request, record, argv, drv_path, outputs, changed=changed, built=False, evaluated=True,
                   in_store=present, iso=iso)  # fmt: skip


def unevaluated(request: Request, record, argv: list, reason: str) -> dict:
    """Check mode where nix cannot fetch the flake's inputs: planned as a build, and said so, not failed."""
    result = _result(request, record, argv, None, {}, changed=True, built=False, evaluated=False, in_store=False,
                     iso=None)  # fmt: skip
    result["diff"]["after"] = "(not evaluated: its inputs cannot be fetched)\n"
    result["warnings"] = [
        f"check mode cannot evaluate {request.attribute} here: nix cannot fetch the flake's inputs ({reason}). "
        "It is planned as a build; a real run builds it, and needs that network access (or the inputs in the "
        "Nix store already)."
    ]
    return result


def build(request: Request, nix: str) -> dict:
    """Builds the attribute, streaming the log to log_file; records the outputs when they changed."""
    record = read_state(request.state_file)
    argv = build_argv(nix, request.target, request.out_link, request.extra_args, request.store)
    for path in (request.log_file, request.state_file, request.out_link):
        if path:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    started = time.time()
    with open(request.log_file, "wb") as log:
        log.write(("$ " + shlex.join(argv) + "\n").encode("utf-8"))
        log.flush()
        try:
            rc, stdout = run_build(argv, log, request.timeout)
        except NixError as exc:
            log.flush()
            exc.details.update(log_file=request.log_file, log_tail=log_tail(request.log_file), cmd=argv)
            raise
    if rc != 0:
        tail = log_tail(request.log_file)
        message = f"nix build of {request.attribute} failed with exit code {rc}; see log_file {request.log_file}"
        raise NixError(message + failure_hint(tail), rc=rc, log_tail=tail, log_file=request.log_file, cmd=argv)
    drv_path, outputs = parse_build_json(stdout)
    changed = outputs_changed(record, outputs)
    recorded_iso = None if changed else (record or {}).get("iso")
    iso = pick_iso(request.iso, outputs, request.store_root, recorded_iso)
    new_record = make_record(request.flake, request.attribute, drv_path, outputs, iso)
    if record != new_record:
        write_state(request.state_file, new_record)
    return _result(request, record, argv, drv_path, outputs, changed=changed, built=True, evaluated=True,
                   in_store=True, iso=iso, log_file=request.log_file, out_link=request.out_link,
                   elapsed=round(time.time() - started, 3))  # fmt: skip


def run(module) -> dict:
    """nerv.homelab.nix_build: bad input fails before nix is even looked for."""
    request = Request(module.params)
    nix = module.get_bin_path("nix")
    if not nix:
        raise NixError("nix is not installed or not on PATH; install Nix (Debian package nix-bin) on the target")
    result = check(request, nix) if module.check_mode else build(request, nix)
    for warning in result.pop("warnings", []):
        module.warn(warning)
    if not module._diff:  # pylint: disable=protected-access
        result.pop("diff")
    return result
