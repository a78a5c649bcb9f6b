#!/usr/bin/env bash
# Run `ansible-test sanity` on the collection without docker and without network access except PyPI.
#
# ansible-test needs the collection at .../ansible_collections/nerv/homelab, so the files git knows
# about (tracked, plus untracked-but-not-ignored: work in progress is checked too) are copied to a
# temporary tree. The controller is the project venv (`--local`); ansible-test still gives every
# sanity test that has requirements (pylint, validate-modules, import, yamllint, ...) a virtual
# environment of its own with the pins of this ansible-core release, cached under ~/.ansible/test/venv,
# so only the first run installs from PyPI. Those environments are bootstrapped with a get-pip.py that
# ansible-test downloads from a server we cannot reach: get_pip.py beside this script stands in for it.
#
# Usage: tests/sanity/run.sh [extra ansible-test sanity arguments, e.g. --test pylint]
# Environment: VENV (default <repo>/.venv), SANITY_KEEP=1 keeps the temporary tree.
set -euo pipefail

repo=$(git -C "$(dirname "${BASH_SOURCE[0]}")" rev-parse --show-toplevel)
cd "$repo"
venv=${VENV:-$repo/.venv}
python=$venv/bin/python
[ -x "$python" ] || { echo "run.sh: $python not found: run 'make venv' first" >&2; exit 2; }
pyver=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')

tmp=$(mktemp -d "${TMPDIR:-/tmp}/nerv-sanity.XXXXXX")
if [ "${SANITY_KEEP:-0}" = 1 ]; then
  echo "run.sh: keeping $tmp"
else
  trap 'rm -rf "$tmp"' EXIT
fi
dest=$tmp/ansible_collections/nerv/homelab
mkdir -p "$dest"

# Tracked and untracked-but-not-ignored files that still exist; never the collections/ link back to the root.
git ls-files -z --cached --others --exclude-standard \
  | "$python" -c '
import os, sys
names = sys.stdin.buffer.read().split(b"\0")
keep = sorted({n for n in names if n and not n.startswith(b"collections/") and os.path.lexists(n)})
sys.stdout.buffer.write(b"\0".join(keep))
' \
  | tar --null --no-recursion -T - -cf - \
  | tar -C "$dest" -xf -

# ansible-test lists the collection's files with git when it is a repository.
git -C "$dest" init -q
git -C "$dest" add -A
git -C "$dest" -c user.name=sanity -c user.email=sanity@localhost -c commit.gpgsign=false \
  commit -q --no-verify -m sanity

# Put the stand-in where ansible-test looks for its cached bootstrap script, unless a real one is there.
pip_version=$("$python" -c '
import types
from ansible_test._internal.python_requirements import get_venv_packages
print(get_venv_packages(types.SimpleNamespace(version="'"$pyver"'"))["pip"])')
get_pip=$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py
if [ ! -e "$get_pip" ]; then
  mkdir -p "$(dirname "$get_pip")"
  cp "$repo/tests/sanity/get_pip.py" "$get_pip"
fi

cd "$dest"
PATH=$venv/bin:$PATH "$venv/bin/ansible-test" sanity --local --python "$pyver" --color no "$@"
