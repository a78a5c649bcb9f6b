# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A site's flake directory, assembled in one pass: the collection's flake tree mirrored (but for the names it
excludes), the site's data files written, its encrypted secrets copied. Only what differs is written (atomically),
so an unchanged site writes nothing; a file the collection no longer ships is removed from the mirrored directories.
"""

from __future__ import annotations

import os

from ansible_collections.nerv.homelab.plugins.module_utils.common.errors import HostError
from ansible_collections.nerv.homelab.plugins.module_utils.common.files import write_atomic

PUBLIC, PRIVATE = 0o644, 0o600


def _check_relative(option: str, path: str) -> str:
    normal = os.path.normpath(path)
    if os.path.isabs(path) or normal == "." or normal.startswith(".."):
        raise HostError(f"{option}: {path!r} must be a path inside dest (relative, without '..')")
    return normal


def mirrored(src: str, exclude: list) -> list:
    """The top-level names of src that are mirrored: all but the hidden and the excluded ones."""
    if not os.path.isdir(src):
        raise HostError(f"src: {src} is not a directory; give the flake directory to assemble from")
    return sorted(n for n in os.listdir(src) if not n.startswith(".") and n not in set(exclude))


def tree(src: str, names: list) -> dict:
    """relative path -> source file of every file under the top-level names of src (hidden ones left out)."""
    found = {}
    for name in names:
        top = os.path.join(src, name)
        if os.path.isfile(top):
            found[name] = top
        for directory, dirs, files in os.walk(top) if os.path.isdir(top) else ():
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for file in sorted(n for n in files if not n.startswith(".")):
                path = os.path.join(directory, file)
                found[os.path.relpath(path, src)] = path
    return found


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def wanted(params: dict, names: list) -> dict:
    """relative path -> (bytes, mode) of everything dest must hold."""
    want = {rel: (_read(path), PUBLIC) for rel, path in tree(params["src"], names).items()}
    for rel, text in (params["files"] or {}).items():
        want[_check_relative("files", rel)] = (str(text).encode(), PUBLIC)
    for item in params["copy"] or []:
        data = _read(item["src"])
        if data is None:
            raise HostError(f"copy: {item['src']} does not exist; make it first (the keys phase makes the site's)")
        want[_check_relative("copy", item["dest"])] = (data, PRIVATE)
    return want


def stale(dest: str, names: list, want: dict) -> list:
    """Files under dest's mirrored directories that the source no longer has."""
    found = []
    for name in names:
        top = os.path.join(dest, name)
        for directory, _dirs, files in os.walk(top) if os.path.isdir(top) else ():
            found += [os.path.relpath(os.path.join(directory, f), dest) for f in files if not f.startswith(".")]
    return sorted(rel for rel in found if rel not in want)


def _differs(path: str, data: bytes, mode: int) -> bool:
    try:
        return _read(path) != data or (os.stat(path).st_mode & 0o777) != mode
    except OSError:
        return True


def run(params: dict, check_mode: bool) -> dict:
    """Assemble dest; report the relative paths written and removed (would be, in check mode)."""
    dest = params["dest"]
    if not os.path.isabs(dest):
        raise HostError(f"dest: {dest!r} is relative; give an absolute directory")
    names = mirrored(params["src"], params["exclude"])
    want = wanted(params, names)
    written = sorted(rel for rel, (data, mode) in want.items() if _differs(os.path.join(dest, rel), data, mode))
    removed = stale(dest, names, want)
    if not check_mode:
        for rel in written:
            data, mode = want[rel]
            write_atomic(os.path.join(dest, rel), data, mode=mode)
        for rel in removed:
            os.unlink(os.path.join(dest, rel))
    return {"changed": bool(written or removed), "dest": dest, "written": written, "removed": removed}
