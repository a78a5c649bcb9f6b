# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The site's known_hosts: which key is pinned for an address, and pinning keys (many at once, one write).

Plain entries only are read by address (the site's file is written plain); hashed ones cannot be matched. Writers
take a lock on the file's directory, so the VMs' parallel jobs can pin their keys into the same file.
"""

from __future__ import annotations

import contextlib
import fcntl
import os

from ansible_collections.nerv.homelab.plugins.module_utils.common.files import write_atomic


def _names(fields: list) -> list:
    """The addresses an entry's first field names ([addr]:port as addr), or [] for a comment, hashed or marked line."""
    if len(fields) < 3 or fields[0].startswith(("#", "|", "@")):
        return []
    return [name.strip("[]").split("]:")[0] for name in fields[0].split(",")]


def _read(path: str) -> list:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read().splitlines()
    except FileNotFoundError:
        return []


def pinned_keys(path: str | None) -> dict:
    """address -> 'ssh-ed25519 AAAA...' of a known_hosts file."""
    pinned = {}
    for line in _read(path) if path else []:
        fields = line.split()
        if fields[1:2] == ["ssh-ed25519"]:
            for address in _names(fields):
                pinned.setdefault(address, f"{fields[1]} {fields[2]}")
    return pinned


def _without(line: str, address: str) -> str | None:
    """The entry with address taken out of its names; None when it named only that address."""
    fields = line.split()
    names = [n for n in fields[0].split(",") if n.strip("[]").split("]:")[0] != address]
    return " ".join([",".join(names), *fields[1:]]) if names else None


def _pinned(lines: list, address: str, key: str) -> tuple:
    """(lines with address pinned to key, whether they changed): an entry of address with another key of the same
    type gives up that address; the other entries stay as they are."""
    ktype, body = key.split()[:2]
    out, found, changed = [], False, False
    for line in lines:
        fields = line.split()
        if address not in _names(fields) or fields[1] != ktype:
            out.append(line)
        elif fields[2] == body and not found:
            out.append(line)
            found = True
        else:
            kept = _without(line, address)
            out += [kept] if kept else []
            changed = True
    if not found:
        out.append(f"{address} {ktype} {body}")
    return out, changed or not found


@contextlib.contextmanager
def _locked(path: str):
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    handle = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)


def pin(path: str, keys: dict, check_mode: bool = False) -> list:
    """Pin each address's key ('type body [comment]') in path, in one write; the addresses whose entry changed.
    Check mode says which would, and writes nothing."""
    with _locked(path):
        lines, changed = _read(path), []
        for address, key in sorted(keys.items()):
            lines, moved = _pinned(lines, address, key)
            changed += [address] if moved else []
        if changed and not check_mode:
            write_atomic(path, "".join(f"{line}\n" for line in lines), mode=0o644)
    return changed
