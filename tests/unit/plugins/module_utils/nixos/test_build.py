"""The pure parts of nix_build: input checks, argv, nix --json parsing, the state record, log tail, sha256, ISOs."""

from __future__ import annotations

import hashlib
import io
import json
import sys

import pytest

from ansible_collections.nerv.homelab.plugins.module_utils.nixos import build as nix
from ansible_collections.nerv.homelab.plugins.module_utils.nixos.build import (
    NixError,
    Request,
    build_argv,
    check_attribute,
    check_extra_args,
    check_iso,
    check_store,
    default_log_file,
    default_state_file,
    eval_argv,
    failure_hint,
    find_isos,
    iso_info,
    log_tail,
    make_record,
    normalize_flake,
    outputs_changed,
    parse_build_json,
    parse_eval_json,
    pick_iso,
    read_state,
    run_build,
    sha256_file,
    tail_lines,
    would_build_outputs,
    would_change,
    write_state,
)
from ansible_collections.nerv.homelab.plugins.module_utils.nixos.nix import NIX_FEATURES

OUT = "/nix/store/hsv0y1pj0mx0pg4rfsbk1z2irdrppjf6-nerv-trivial"
DRV = "/nix/store/2hqwc83r130qdxbmfkqd8dgld27cgx64-nerv-trivial.drv"
# Printed by Debian's Nix 2.8.0 for `nix build --json --no-link path:...#packages.x86_64-linux.default`.
NIX_2_8_BUILD = (
    '[{"drvPath":"/nix/store/2hqwc83r130qdxbmfkqd8dgld27cgx64-nerv-trivial.drv",'
    '"outputs":{"out":"/nix/store/hsv0y1pj0mx0pg4rfsbk1z2irdrppjf6-nerv-trivial"}}]\n'
)
# Later releases add build times.
NIX_2_2X_BUILD = json.dumps([{"drvPath": DRV, "outputs": {"out": OUT}, "startTime": 1, "stopTime": 2}])
ATTR = "packages.x86_64-linux.default"


@pytest.fixture
def flake_dir(tmp_path):
    directory = tmp_path / "flake"
    directory.mkdir()
    (directory / "flake.nix").write_text("{ outputs = { self }: { }; }\n")
    return directory


# --- input checks ---------------------------------------------------------------------------------------------


def test_a_directory_becomes_a_path_reference_and_references_pass(flake_dir):
    assert normalize_flake(str(flake_dir)) == f"path:{flake_dir}"
    assert normalize_flake(f"{flake_dir}/") == f"path:{flake_dir}"
    assert normalize_flake(f"path:{flake_dir}") == f"path:{flake_dir}"
    assert normalize_flake(f"path:{flake_dir}?narHash=sha256-x") == f"path:{flake_dir}?narHash=sha256-x"
    assert normalize_flake("git+file:///srv/flake") == "git+file:///srv/flake"
    assert normalize_flake("github:nerv-homelab/flake") == "github:nerv-homelab/flake"


def test_home_directory_flake_is_expanded(flake_dir, monkeypatch):
    monkeypatch.setenv("HOME", str(flake_dir.parent))
    assert normalize_flake("~/flake") == f"path:{flake_dir}"


@pytest.mark.parametrize(
    ("flake", "message"),
    [
        ("", "flake: empty"),
        ("relative/dir", "flake: 'relative/dir' is a relative path; give an absolute one"),
        ("{missing}", "flake: directory {missing} does not exist"),
        ("path:{missing}", "flake: directory {missing} does not exist"),
        ("path:relative", "flake: 'path:relative' names a relative directory"),
        ("{empty}", "flake: {empty} has no flake.nix"),
        ("{flake}#packages.x86_64-linux.default", "flake: '{flake}#packages.x86_64-linux.default' holds '#'"),
        ("{flake} extra", "flake: '{flake} extra' holds whitespace"),
    ],
)
def test_bad_flakes_name_the_option_and_the_fix(flake_dir, tmp_path, flake, message):
    (tmp_path / "empty").mkdir()
    names = {"missing": tmp_path / "missing", "empty": tmp_path / "empty", "flake": flake_dir}
    with pytest.raises(NixError) as caught:
        normalize_flake(flake.format(**names))
    assert caught.value.message.startswith(message.format(**names)), caught.value.message


@pytest.mark.parametrize(
    "attribute",
    [ATTR, "nixosConfigurations.installer.config.system.build.isoImage", "packages.aarch64-linux.gtk+", "a.b'", "x"],
)
def test_dotted_attribute_paths_pass(attribute):
    assert check_attribute(attribute) == attribute


@pytest.mark.parametrize(
    "attribute",
    ["", None, "packages x86", "a;b", "$(id)", "a.b`c`", "a..b", ".a", "a.", "a#b", "a|b", 'a."b c"', "a\nb", "a/b"],
)
def test_attributes_with_spaces_or_shell_characters_are_refused(attribute):
    with pytest.raises(NixError, match=r"^attribute: .* is not a flake attribute path; use dot-separated"):
        check_attribute(attribute)


@pytest.mark.parametrize(
    ("arg", "fix"),
    [
        ("--json", "--json is not allowed"),
        ("--out-link", "use the out_link option"),
        ("-o", "use the out_link option"),
        ("--no-link", "out_link"),
        ("--store=/x", "use the store option"),
        ("--print-out-paths", "--json"),
        ("--extra-experimental-features", "nix-command and flakes"),
    ],
)
def test_extra_args_the_module_sets_itself_are_refused(arg, fix):
    with pytest.raises(NixError, match="^extra_args: ") as caught:
        check_extra_args(["-L", arg])
    assert fix in caught.value.message


def test_extra_args_are_kept_as_given_and_refuse_embedded_newlines():
    args = ["--option", "substituters", "", "--impure", "-j", "4"]
    assert check_extra_args(args) == args
    assert check_extra_args(None) == []
    with pytest.raises(NixError, match="^extra_args: .* NUL or newline"):
        check_extra_args(["--option a\nb"])


@pytest.mark.parametrize(
    ("value", "mode"),
    [("auto", "auto"), (None, "auto"), (True, True), (False, False), ("yes", True), ("False", False), ("on", True)],
)
def test_iso_option_accepts_auto_and_booleans(value, mode):
    assert check_iso(value) is mode if isinstance(mode, bool) else check_iso(value) == mode


def test_iso_option_refuses_anything_else():
    with pytest.raises(NixError, match="^iso: 'maybe' is not one of auto, true, false"):
        check_iso("maybe")


@pytest.mark.parametrize(
    ("store", "expected"),
    [
        (None, (None, None)),
        ("", (None, None)),
        ("daemon", ("daemon", None)),
        ("/tmp/store", ("/tmp/store", "/tmp/store")),
        ("local?root=/tmp/store", ("local?root=/tmp/store", "/tmp/store")),
        ("ssh-ng://builder", ("ssh-ng://builder", None)),
    ],
)
def test_store_and_the_root_its_paths_live_under(store, expected):
    assert check_store(store) == expected


def test_request_refuses_relative_files_and_an_existing_non_link_out_link(flake_dir, tmp_path):
    base = {"flake": str(flake_dir), "attribute": ATTR}
    with pytest.raises(NixError, match="^state_file: 'state.json' is relative"):
        Request(dict(base, state_file="state.json"), environ={"XDG_CACHE_HOME": str(tmp_path)})
    with pytest.raises(NixError, match="^out_link: 'result' is relative"):
        Request(dict(base, out_link="result"), environ={})
    (tmp_path / "file").write_text("x")
    with pytest.raises(NixError, match="^out_link: .* exists and is not a symlink"):
        Request(dict(base, out_link=str(tmp_path / "file")), environ={})
    with pytest.raises(NixError, match="^timeout: 0 is not a positive number"):
        Request(dict(base, timeout=0), environ={})


class NoNix:
    """A module on a machine without nix; it notes when nix is looked for."""

    check_mode = _diff = False

    def __init__(self, params):
        self.params, self.looked_for = params, []

    def get_bin_path(self, name):
        self.looked_for.append(name)


def test_bad_input_fails_before_nix_is_even_looked_for(tmp_path):
    module = NoNix({"flake": str(tmp_path / "missing"), "attribute": ATTR})
    with pytest.raises(NixError, match="^flake: directory"):
        nix.run(module)
    assert module.looked_for == []


def test_missing_nix_is_reported_with_the_package_to_install(flake_dir, tmp_path):
    module = NoNix({"flake": str(flake_dir), "attribute": ATTR, "state_file": str(tmp_path / "s.json")})
    with pytest.raises(NixError, match="nix is not installed.*nix-bin"):
        nix.run(module)


# --- argv ---------------------------------------------------------------------------------------------------------


def test_build_argv_enables_flakes_asks_for_json_and_full_logs():
    argv = build_argv("/usr/bin/nix", f"path:/f#{ATTR}", extra_args=["--option", "substituters", ""])
    assert argv[:3] == ["/usr/bin/nix", *NIX_FEATURES] and NIX_FEATURES[1] == "nix-command flakes"
    assert argv[3:] == [
        "build",
        f"path:/f#{ATTR}",
        "--json",
        "--print-build-logs",
        "--no-link",
        "--option",
        "substituters",
        "",
    ]
    assert "--print-out-paths" not in argv  # Nix 2.8 has no such option


def test_build_argv_links_and_picks_the_store():
    argv = build_argv("nix", "path:/f#a", out_link="/srv/result", store="/tmp/store")
    assert argv[-4:] == ["--out-link", "/srv/result", "--store", "/tmp/store"] and "--no-link" not in argv


def test_eval_argv_asks_for_the_derivation_and_outputs_without_building():
    argv = eval_argv("nix", "path:/f#a", extra_args=["--impure"], store="daemon")
    assert argv[:6] == ["nix", *NIX_FEATURES, "eval", "path:/f#a", "--json"]
    assert argv[6] == "--apply" and "drvPath" in argv[7] and "outputs" in argv[7]
    assert argv[8:] == ["--store", "daemon", "--impure"]
    assert "build" not in argv


# --- nix output ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [NIX_2_8_BUILD, NIX_2_2X_BUILD])
def test_build_json_of_nix_2_8_and_later(text):
    assert parse_build_json(text) == (DRV, {"out": OUT})


def test_build_json_with_several_outputs_and_a_store_path_installable():
    text = json.dumps([{"drvPath": DRV, "outputs": {"out": OUT, "dev": OUT + "-dev"}}])
    assert parse_build_json(text) == (DRV, {"out": OUT, "dev": OUT + "-dev"})
    assert parse_build_json(json.dumps([{"path": OUT}])) == (None, {"out": OUT})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "printed no JSON"),
        ("[]", "named no output path"),
        ('[{"drvPath": "x"}]', "named no output"),
        ("[1]", "unexpected entry"),
    ],
)
def test_build_json_that_names_no_output_is_an_error(text, message):
    with pytest.raises(NixError, match=message):
        parse_build_json(text)


def test_eval_json():
    assert parse_eval_json(json.dumps({"drvPath": DRV, "outputs": {"out": OUT}})) == (DRV, {"out": OUT})
    with pytest.raises(NixError, match="not a derivation"):
        parse_eval_json('{"drvPath": null, "outputs": {}}')
    with pytest.raises(NixError, match="printed no JSON"):
        parse_eval_json("error")


# --- the state record ----------------------------------------------------------------------------------------------


def test_default_state_and_log_files_are_per_flake_and_attribute(tmp_path):
    environ = {"XDG_CACHE_HOME": str(tmp_path)}
    first = default_state_file("path:/a", ATTR, environ)
    assert first.startswith(f"{tmp_path}/nerv-homelab/nix_build/") and first.endswith(".json")
    assert first == default_state_file("path:/a", ATTR, environ)
    assert first != default_state_file("path:/b", ATTR, environ)
    assert first != default_state_file("path:/a", ATTR + "x", environ)
    assert default_log_file(first) == first[: -len(".json")] + ".log"
    assert default_log_file("/x/state") == "/x/state.log"


def test_default_state_file_falls_back_to_home_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_state_file("path:/a", ATTR, {}).startswith(f"{tmp_path}/.cache/nerv-homelab/nix_build/")


def test_state_round_trip_and_change_decisions(tmp_path):
    path = tmp_path / "deep" / "state.json"
    assert read_state(str(path)) is None
    record = make_record("path:/a", ATTR, DRV, {"out": OUT})
    assert outputs_changed(None, {"out": OUT}) is True
    write_state(str(path), record)
    assert read_state(str(path)) == record
    assert [p.name for p in path.parent.iterdir()] == ["state.json"], "a temporary file was left behind"
    assert outputs_changed(record, {"out": OUT}) is False
    assert outputs_changed(record, {"out": OUT + "2"}) is True
    assert outputs_changed(record, {"out": OUT, "dev": OUT + "-dev"}) is True


@pytest.mark.parametrize("content", ["not json", "[]", '{"outputs": "x"}'])
def test_an_unreadable_record_counts_as_none(tmp_path, content):
    path = tmp_path / "state.json"
    path.write_text(content)
    assert read_state(str(path)) is None


def test_check_mode_compares_the_recorded_outputs_only():
    record = make_record("path:/a", ATTR, DRV, {"out": OUT})
    evaluated = {"out": OUT, "dev": OUT + "-dev"}
    assert would_change(None, evaluated) is True
    assert would_change(record, evaluated) is False
    assert would_change(record, {"out": OUT + "2"}) is True
    assert would_change(record, {"dev": OUT}) is True
    assert would_build_outputs(record, evaluated) == {"out": OUT}
    assert would_build_outputs(None, evaluated) == evaluated


# --- log tail, sha256, ISO -----------------------------------------------------------------------------------------


def test_tail_lines_reads_only_the_end_across_blocks():
    text = "".join(f"line {n}\n" for n in range(1000))
    stream = io.BytesIO(text.encode())
    assert tail_lines(stream, 30, block=64) == [f"line {n}" for n in range(970, 1000)]
    assert tail_lines(io.BytesIO(b"one\ntwo"), 30) == ["one", "two"]
    assert tail_lines(io.BytesIO(b""), 30) == []
    assert tail_lines(io.BytesIO(b"a\n\xffb\n"), 1) == ["\ufffdb"]


def test_log_tail_of_a_file_and_of_a_missing_one(tmp_path):
    path = tmp_path / "build.log"
    path.write_text("".join(f"{n}\n" for n in range(100)))
    assert log_tail(str(path)) == [str(n) for n in range(70, 100)]
    assert log_tail(str(path), 3) == ["97", "98", "99"]
    assert log_tail(str(tmp_path / "missing")) == []


def test_sha256_is_streamed_in_chunks(tmp_path):
    path = tmp_path / "image.iso"
    data = bytes(range(256)) * 1000
    path.write_bytes(data)
    assert sha256_file(str(path), chunk=4096) == hashlib.sha256(data).hexdigest()
    assert sha256_file(str(path)) == hashlib.sha256(data).hexdigest()


def test_iso_found_under_output_iso_dir_or_as_the_output_itself(tmp_path):
    out = tmp_path / "nix" / "store" / "abc-installer"
    (out / "iso").mkdir(parents=True)
    (out / "iso" / "b.iso").write_bytes(b"b")
    (out / "iso" / "a.iso").write_bytes(b"data\n")
    (out / "iso" / "notes.txt").write_text("x")
    single = tmp_path / "single.iso"
    single.write_bytes(b"x")
    assert find_isos({"out": str(out)}) == [str(out / "iso" / "a.iso"), str(out / "iso" / "b.iso")]
    assert find_isos({"out": "/nix/store/abc-installer"}, root=str(tmp_path)) == find_isos({"out": str(out)})
    assert find_isos({"out": str(single)}) == [str(single)]
    assert find_isos({"out": str(tmp_path / "missing")}) == []

    info = pick_iso("auto", {"out": str(out)})
    assert info == {"path": str(out / "iso" / "a.iso"), "size": 5, "sha256": hashlib.sha256(b"data\n").hexdigest()}
    assert pick_iso(False, {"out": str(out)}) is None
    assert pick_iso("auto", {"out": str(tmp_path / "missing")}) is None
    assert pick_iso(True, {"out": str(tmp_path / "missing")}, required_ok=False) is None
    with pytest.raises(NixError, match=r"^iso: true, but no iso/\*\.iso"):
        pick_iso(True, {"out": str(tmp_path / "missing")})


def test_recorded_sha256_is_reused_for_the_same_path_and_size(tmp_path):
    path = tmp_path / "a.iso"
    path.write_bytes(b"data\n")
    recorded = {"path": str(path), "size": 5, "sha256": "recorded"}
    assert iso_info(str(path), recorded)["sha256"] == "recorded"
    assert iso_info(str(path), dict(recorded, size=6))["sha256"] == hashlib.sha256(b"data\n").hexdigest()
    assert iso_info(str(path), None)["sha256"] == hashlib.sha256(b"data\n").hexdigest()


# --- running a command ---------------------------------------------------------------------------------------------


def test_run_build_streams_stderr_to_the_log_and_returns_stdout(tmp_path):
    script = "import sys; print('[1]'); [print(f'log {n}', file=sys.stderr) for n in range(3)]; sys.exit(3)"
    with open(tmp_path / "log", "wb") as log:
        rc, stdout = run_build([sys.executable, "-c", script], log)
    assert (rc, stdout) == (3, "[1]\n")
    assert (tmp_path / "log").read_text() == "log 0\nlog 1\nlog 2\n"


def test_run_build_kills_the_command_past_its_timeout(tmp_path):
    argv = [sys.executable, "-c", "import time; time.sleep(60)", "build", "path:/f#a"]
    with open(tmp_path / "log", "wb") as log, pytest.raises(NixError) as caught:
        run_build(argv, log, timeout=1)
    assert caught.value.message == "timed out after 1 s: nix build path:/f#a; raise timeout or leave it out"
    assert (tmp_path / "log").read_bytes() == b""


def test_run_build_names_a_command_that_cannot_start(tmp_path):
    with open(tmp_path / "log", "wb") as log, pytest.raises(NixError, match="^cannot run /no/such/nix"):
        run_build(["/no/such/nix"], log)


def test_failure_hint_names_the_fix_for_a_missing_build_users_group():
    # The line nix 2.8 prints as root when nix-bin is installed without nix-setup-systemd.
    tail = ["error: the group 'nixbld' specified in 'build-users-group' does not exist"]
    assert failure_hint(tail).startswith("; Fix: the build users group is missing: on Debian install nix-setup-systemd")
    assert failure_hint(["error: builder for '/nix/store/x.drv' failed with exit code 1"]) == ""
