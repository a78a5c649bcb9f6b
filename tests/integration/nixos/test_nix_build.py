"""nerv.homelab.nix_build in a real playbook: real, offline nix builds of a flake with no inputs.

The flake (fixtures/nix/trivial) is copied into tmp_path first, so the builds never depend on where the
checkout is. Builds go to the default Nix store when it is writable (root, or a nix-daemon to talk to),
else to a private store under the session's temp directory; NERV_TEST_NIX_STORE=default|private forces one.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
from pathlib import Path

import pytest

from .._skips import require_commands

MODULE = "nerv.homelab.nix_build"
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "nix" / "trivial"
SYSTEM = "x86_64-linux"
EXPERIMENTAL = ["--extra-experimental-features", "nix-command flakes"]
# Offline: without this Nix spends seconds retrying cache.nixos.org before every build.
OFFLINE = ["--option", "substituters", ""]
# The fixture's builders are /bin/sh and host tools: the default store builds without the sandbox (as Debian's
# nix.conf says anyway); a private (chroot) store always builds sandboxed, so the host's /bin, /usr and
# libraries are bound into the sandbox.
DEFAULT_STORE_ARGS = [*OFFLINE, "--option", "sandbox", "false"]
PRIVATE_STORE_ARGS = [*OFFLINE, "--option", "extra-sandbox-paths", "/bin /usr /lib? /lib64?"]
ATTR = f"packages.{SYSTEM}"


def _default_store_usable() -> bool:
    socket = "/nix/var/nix/daemon-socket/socket"
    if os.geteuid() != 0:  # os.path: a socket directory we may not enter is "no daemon", not an error
        return os.path.exists(socket) and os.access(socket, os.W_OK)
    store = Path("/nix/store")
    if store.exists():
        return os.access(store, os.W_OK)
    nix_dir = Path("/nix")
    return os.access(nix_dir if nix_dir.exists() else Path("/"), os.W_OK)


@pytest.fixture(scope="session")
def nix_store(tmp_path_factory):
    """{"store": <private store dir or None>, "extra_args": [...]}: a store the fixture flake builds in.

    Skips, saying why, when nix is missing, the machine is not x86_64-linux or a probe build fails."""
    nix = require_commands("nix")["nix"]
    if platform.system() != "Linux" or platform.machine() != "x86_64":
        pytest.skip(f"the fixture flake builds for {SYSTEM}; this is {platform.system()} {platform.machine()}")
    choice = os.environ.get("NERV_TEST_NIX_STORE", "auto")
    if choice == "default" or (choice == "auto" and _default_store_usable()):
        store, extra = None, DEFAULT_STORE_ARGS
    else:
        store, extra = str(tmp_path_factory.mktemp("nix-store")), PRIVATE_STORE_ARGS
    probe_dir = tmp_path_factory.mktemp("nix-probe") / "flake"
    shutil.copytree(FIXTURE, probe_dir)
    argv = [nix, *EXPERIMENTAL, "build", "--no-link", "--json", f"path:{probe_dir}#{ATTR}.default", *extra]
    if store:
        argv += ["--store", store]
    try:
        probe = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    except subprocess.TimeoutExpired:
        pytest.skip(f"nix cannot build here: the probe build timed out: {' '.join(argv)}")
    if probe.returncode != 0:
        where = f"private store {store}" if store else "the default store"
        tail = " | ".join(probe.stderr.strip().splitlines()[-5:])
        pytest.skip(f"nix cannot build the fixture flake in {where} (rc={probe.returncode}): {tail}")
    return {"store": store, "extra_args": extra}


@pytest.fixture
def flake(tmp_path):
    """A private copy of the fixture flake: edits and builds never touch the checkout."""
    copy = tmp_path / "flake"
    shutil.copytree(FIXTURE, copy)
    return copy


def on_disk(path, nix_store):
    """Where a store path is on this machine (under the private store's root when there is one)."""
    return Path(nix_store["store"] + path) if nix_store["store"] else Path(path)


def build(name, nix_store, **options):
    args = {**options}
    if nix_store["store"]:
        args["store"] = nix_store["store"]
    args.setdefault("extra_args", nix_store["extra_args"])
    return {"name": name, MODULE: args}


def play(*tasks):
    return [{"name": "Nix build", "hosts": "localhost", "gather_facts": False, "tasks": list(tasks)}]


def hermetic_env(tmp_path):
    """XDG_CACHE_HOME under tmp_path: the default state and log files (and Nix's own cache) land there."""
    return {"XDG_CACHE_HOME": str(tmp_path / "cache")}


def test_build_changes_once_then_not_and_check_mode_builds_nothing(ansible_cli, nix_store, flake, tmp_path):
    link = tmp_path / "links" / "result"
    target = f"{ATTR}.default"
    check = dict(build("Check before building", nix_store, flake=str(flake), attribute=target), check_mode=True)
    run = ansible_cli.playbook(play(check), env=hermetic_env(tmp_path))
    assert run.rc == 0, run.describe()
    before = run.task("Check before building")

    # Check mode first: reports the output it would build, changed (no record yet), and writes nothing.
    assert before["changed"] is True and before["built"] is False, before
    assert before["flake"] == f"path:{flake}" and before["installable"] == f"path:{flake}#{target}"
    assert before["out_path"].startswith("/nix/store/") and before["out_path"].endswith("-nerv-trivial"), before
    assert before["previous_outputs"] is None and before["log_file"] is None, before
    state = Path(before["state_file"])
    assert state.parent == tmp_path / "cache" / "nerv-homelab" / "nix_build", before["state_file"]
    assert not (tmp_path / "cache" / "nerv-homelab").exists(), "check mode wrote a file"
    assert not link.parent.exists() and "log_tail" not in before

    tasks = (
        build("Build", nix_store, flake=str(flake), attribute=target, out_link=str(link)),
        build("Build again", nix_store, flake=str(flake), attribute=target, out_link=str(link)),
        dict(build("Check after building", nix_store, flake=str(flake), attribute=target), check_mode=True),
    )
    run = ansible_cli.playbook(play(*tasks), "--diff", env=hermetic_env(tmp_path))
    assert run.rc == 0, run.describe()
    first, again, after = (run.task(t["name"]) for t in tasks)

    # The first build: changed, the output is real, recorded, logged and linked.
    assert first["changed"] is True and first["built"] is True, first
    assert first["outputs"] == before["outputs"] and first["out_path"] == before["out_path"], (before, first)
    assert first["drv_path"] == before["drv_path"] and first["drv_path"].endswith("-nerv-trivial.drv"), first
    assert on_disk(first["out_path"], nix_store).read_text() == "hello\n"
    assert first["state_file"] == str(state) and state.is_file()
    assert first["log_file"] == str(state.with_suffix(".log")), first
    log = Path(first["log_file"]).read_text()
    assert log.startswith("$ ") and f"#{target}" in log.splitlines()[0], log
    assert os.readlink(link) == first["out_path"] and first["out_link"] == str(link)
    assert first["iso"] is None, "iso: auto found an ISO in a plain file output"
    assert f"+out: {first['out_path']}" in run.stdout, "--diff shows no new output path"

    # Same flake again: built, same output, not changed.
    assert again["changed"] is False and again["built"] is True, again
    assert again["outputs"] == first["outputs"] and again["previous_outputs"] == first["outputs"], again
    assert after["changed"] is False and after["built"] is False and after["in_store"] is True, after
    assert after["outputs"] == first["outputs"], after
    assert run.stats()["changed"] == 1, run.describe()  # the first build alone

    # A new output path: check mode sees it coming (and writes nothing), the build records it.
    (flake / "flake.nix").write_text((flake / "flake.nix").read_text().replace("echo hello >", "echo hello again >"))
    recorded = state.read_text()
    tasks = (
        dict(build("Check the edited flake", nix_store, flake=str(flake), attribute=target), check_mode=True),
        build("Build the edited flake", nix_store, flake=str(flake), attribute=target),
    )
    run = ansible_cli.playbook(play(*tasks), env=hermetic_env(tmp_path))
    assert run.rc == 0, run.describe()
    check, rebuilt = (run.task(t["name"]) for t in tasks)
    assert check["changed"] is True and check["previous_outputs"] == first["outputs"], check
    assert check["out_path"] != first["out_path"], check
    assert rebuilt["changed"] is True and rebuilt["out_path"] == check["out_path"], rebuilt
    assert rebuilt["previous_outputs"] == first["outputs"], rebuilt
    assert on_disk(rebuilt["out_path"], nix_store).read_text() == "hello again\n"
    assert state.read_text() != recorded and rebuilt["out_path"] in state.read_text()


def test_iso_output_reports_path_size_and_streamed_sha256(ansible_cli, nix_store, flake, tmp_path):
    state = tmp_path / "state" / "iso.json"
    options = {"flake": f"path:{flake}", "attribute": f"{ATTR}.iso", "state_file": str(state)}
    plain = {"flake": str(flake), "attribute": f"{ATTR}.default"}
    tasks = (
        build("Build the ISO", nix_store, **options),
        build("Build the ISO again, iso required", nix_store, iso=True, **options),
        dict(build("Check the ISO", nix_store, **options), check_mode=True),
        dict(build("A plain output with iso required", nix_store, **plain, iso=True), ignore_errors=True),
        build("A plain output with iso off", nix_store, **plain, iso=False),
    )
    run = ansible_cli.playbook(play(*tasks), env=hermetic_env(tmp_path))
    assert run.rc == 0, run.describe()
    first, again, check, required, off = (run.task(t["name"]) for t in tasks)

    expected = {
        "path": str(on_disk(first["out_path"], nix_store) / "iso" / "test.iso"),
        "size": len(b"data\n"),
        "sha256": hashlib.sha256(b"data\n").hexdigest(),
    }
    assert first["changed"] is True and first["iso"] == expected, first
    assert again["changed"] is False and again["iso"] == expected, again
    assert check["changed"] is False and check["iso"] == expected, check
    assert required["status"] == "failed" and required["msg"].startswith("iso: true, but no iso/*.iso"), required
    assert off["status"] == "ok" and off["iso"] is None, off


def test_failing_build_returns_log_tail_and_log_file(ansible_cli, nix_store, flake, tmp_path):
    state = tmp_path / "state" / "broken.json"
    target = f"{ATTR}.broken"
    task = build("Build the broken derivation", nix_store, flake=str(flake), attribute=target, state_file=str(state))
    run = ansible_cli.playbook(play(task), env=hermetic_env(tmp_path))
    assert run.rc == 2 and run.stats()["failures"] == 1, run.describe()
    result = run.task("Build the broken derivation")

    assert result["status"] == "failed" and result["rc"] == 1, result
    assert target in result["msg"] and "exit code 1" in result["msg"], result["msg"]
    assert result["log_file"] == str(state.with_suffix(".log")), result
    log_lines = Path(result["log_file"]).read_text().splitlines()
    assert result["log_tail"] == log_lines[-30:], result["log_tail"]
    assert any("about to fail" in line for line in result["log_tail"]), result["log_tail"]
    assert any("failed with exit code 1" in line for line in result["log_tail"]), result["log_tail"]
    assert not state.exists(), "a failed build was recorded"


def test_a_missing_build_users_group_fails_with_the_fix(ansible_cli, nix_store, flake, tmp_path):
    # What a fresh Debian machine with nix-bin but without nix-setup-systemd meets, made here by naming a group
    # that does not exist; the real nix refuses and the module says what to install.
    extra = [*nix_store["extra_args"], "--option", "build-users-group", "nerv-no-such-group"]
    # broken: never in the store, so nix must build, and so needs its build users.
    task = build("Build without build users", nix_store, flake=str(flake), attribute=f"{ATTR}.broken",
                 extra_args=extra)  # fmt: skip
    run = ansible_cli.playbook(play(task), env=hermetic_env(tmp_path))
    result = run.task("Build without build users")
    assert result["status"] == "failed", result
    if nix_store["store"] is None:  # a private store builds as this user, without build users
        assert "Fix: the build users group is missing: on Debian install nix-setup-systemd" in result["msg"], result


def test_missing_attribute_fails_in_check_mode_too_and_writes_nothing(ansible_cli, nix_store, flake, tmp_path):
    state = tmp_path / "state" / "nope.json"
    options = {"flake": str(flake), "attribute": f"{ATTR}.nope", "state_file": str(state)}
    tasks = (
        dict(build("Check a missing attribute", nix_store, **options), check_mode=True, ignore_errors=True),
        dict(build("Build a missing attribute", nix_store, **options), ignore_errors=True),
    )
    run = ansible_cli.playbook(play(*tasks), env=hermetic_env(tmp_path))
    assert run.rc == 0, run.describe()
    check, built = (run.task(t["name"]) for t in tasks)

    assert check["status"] == "failed", check
    assert check["msg"].startswith(f"nix eval of {ATTR}.nope (check mode) failed with exit code 1"), check
    assert "log_file" not in check and any("nope" in line for line in check["log_tail"]), check
    assert built["status"] == "failed" and f"nix build of {ATTR}.nope failed with exit code" in built["msg"], built
    assert any("nope" in line for line in built["log_tail"]), built
    assert not state.exists()


def test_timeout_stops_the_build(ansible_cli, nix_store, flake, tmp_path):
    state = tmp_path / "state" / "slow.json"
    task = build(
        "Build past the timeout",
        nix_store,
        flake=str(flake),
        attribute=f"{ATTR}.slow",
        state_file=str(state),
        timeout=3,
    )
    run = ansible_cli.playbook(play(task), env=hermetic_env(tmp_path), timeout=120)
    assert run.rc == 2, run.describe()
    result = run.task("Build past the timeout")
    assert result["status"] == "failed" and result["msg"].startswith("timed out after 3 s: nix build path:"), result
    assert result["log_file"] == str(state.with_suffix(".log")) and "log_tail" in result, result
    assert not state.exists()


FAKE_NIX = """#!/bin/sh
echo "$@" >> "{marker}"
exit 1
"""


def test_bad_input_fails_early_naming_the_option_and_runs_nothing(ansible_cli, tmp_path):
    """No Nix is needed: a fake nix first on PATH proves nothing was run."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    marker = tmp_path / "nix-was-run"
    (bin_dir / "nix").write_text(FAKE_NIX.format(marker=marker))
    (bin_dir / "nix").chmod(0o755)
    flake = tmp_path / "flake"
    shutil.copytree(FIXTURE, flake)
    no_flake_nix = tmp_path / "empty"
    no_flake_nix.mkdir()
    state = tmp_path / "state" / "bad.json"
    cases = {
        "A missing flake directory": ({"flake": str(tmp_path / "missing")}, "flake: directory "),
        "A directory without flake.nix": ({"flake": str(no_flake_nix)}, "flake: "),
        "A relative flake directory": ({"flake": "nix/trivial"}, "flake: 'nix/trivial' is a relative path"),
        "An attribute after #": ({"flake": f"{flake}#{ATTR}.default"}, "flake: "),
        "An attribute with spaces": ({"attribute": f"{ATTR}.default; touch /tmp/x"}, "attribute: "),
        "An attribute with shell characters": ({"attribute": "$(id)"}, "attribute: "),
        "A reserved extra argument": ({"extra_args": ["--out-link", "/tmp/x"]}, "extra_args: --out-link"),
        "A bad iso value": ({"iso": "maybe"}, "iso: "),
        "A zero timeout": ({"timeout": 0}, "timeout: "),
    }
    tasks = []
    for name, (options, _prefix) in cases.items():
        args = {"flake": str(flake), "attribute": f"{ATTR}.default", "state_file": str(state), **options}
        tasks.append({"name": name, MODULE: args, "ignore_errors": True})
    env = {**hermetic_env(tmp_path), "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    run = ansible_cli.playbook(play(*tasks), env=env)
    assert run.rc == 0, run.describe()
    for name, (_options, prefix) in cases.items():
        result = run.task(name)
        assert result["status"] == "failed", (name, result)
        assert result["msg"].startswith(prefix), (name, result["msg"])
        assert " give " in result["msg"] or " use " in result["msg"] or "one of" in result["msg"], (name, result)
    assert not marker.exists(), f"nix ran on bad input: {marker.read_text()}"
    assert not state.parent.exists() and not (tmp_path / "cache").exists(), "bad input wrote a file"


def test_check_mode_plans_a_build_whose_inputs_cannot_be_fetched(ansible_cli, nix_store, tmp_path):
    """A flake whose input is out of reach (here a host that never resolves, offline a nixpkgs on GitHub): check mode
    says so and plans the build instead of failing; a real run fails, since it needs the input."""
    offline = tmp_path / "offline"
    offline.mkdir()
    (offline / "flake.nix").write_text(
        '{ inputs.far.url = "https://nerv-homelab.invalid/far.tar.gz";\n'
        "  outputs = { self, far }: { packages.x86_64-linux.default = far; }; }\n"
    )
    options = {"flake": str(offline), "attribute": f"{ATTR}.default", "state_file": str(tmp_path / "s.json")}
    tasks = (
        dict(build("Check the unreachable flake", nix_store, **options), check_mode=True),
        dict(build("Build the unreachable flake", nix_store, **options), ignore_errors=True),
    )
    run = ansible_cli.playbook(play(*tasks), "--diff", env=hermetic_env(tmp_path))
    assert run.rc == 0, run.describe()
    check, built = (run.task(t["name"]) for t in tasks)
    assert check["changed"] is True and check["evaluated"] is False and check["out_path"] is None, check
    assert "check mode cannot evaluate packages.x86_64-linux.default here: nix cannot fetch" in run.output
    assert "nerv-homelab.invalid" in run.output and "a real run builds it" in run.output
    assert built["status"] == "failed" and "nix build of" in built["msg"], built
    assert not (tmp_path / "s.json").exists()
