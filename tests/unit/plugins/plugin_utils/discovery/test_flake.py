"""nerv.homelab.flake's pure parts: evaluation JSON -> hosts and groups, flake references, the cache digest."""

from __future__ import annotations

import json

import pytest

from ansible_collections.nerv.homelab.plugins.plugin_utils.discovery import flake as logic

REF = "path:/srv/fleet"


def raw(**extra):
    value = {
        "hasOutputs": True,
        "nixosConfigurations": {"pi": {"system": "aarch64-linux"}, "box": {"system": "x86_64-linux"}},
        "darwinConfigurations": {"mac": {"system": "aarch64-darwin"}},
        "deploy": {"pi": {"hostname": "pi.lan", "sshUser": "admin"}, "box": {"hostname": None, "sshUser": None}},
        "tags": {"pi": ["edge", "dns-1"], "mac": ["laptop"]},
    }
    value.update(extra)
    return value


def test_hosts_get_platform_system_attr_and_deploy_data():
    model = logic.build(raw(), REF)
    assert model.hosts["pi"] == {
        "ansible_host": "pi.lan",
        "ansible_user": "admin",
        "nerv_flake_platform": "nixos",
        "nerv_flake_system": "aarch64-linux",
        "nerv_flake_attr": "nixosConfigurations.pi",
        "nerv_flake": REF,
    }
    assert model.hosts["box"]["ansible_host"] == "box", "no deploy hostname: the configuration's name"
    assert "ansible_user" not in model.hosts["box"]
    assert model.hosts["mac"]["nerv_flake_platform"] == "darwin"
    assert model.hosts["mac"]["nerv_flake_attr"] == "darwinConfigurations.mac"
    assert model.warnings == []


def test_groups_by_platform_system_and_sanitised_tag():
    groups = {name: sorted(hosts) for name, hosts in logic.build(raw(), REF).groups.items()}
    assert groups == {
        "nixos": ["box", "pi"],
        "darwin": ["mac"],
        "system_aarch64_linux": ["pi"],
        "system_x86_64_linux": ["box"],
        "system_aarch64_darwin": ["mac"],
        "tag_edge": ["pi"],
        "tag_dns_1": ["pi"],
        "tag_laptop": ["mac"],
    }


def test_home_users_become_a_host_variable():
    model = logic.build(raw(homes={"pi": ["alice", "bob"], "mac": [], "gone": ["carol"]}), REF)
    assert model.hosts["pi"]["nerv_home_users"] == ["alice", "bob"]
    assert "nerv_home_users" not in model.hosts["mac"] and "nerv_home_users" not in model.hosts["box"]
    assert model.warnings == ["nerv.homes.gone has no nixosConfigurations or darwinConfigurations entry"]


def test_home_users_must_be_a_list_of_strings():
    with pytest.raises(logic.FlakeError, match=r"nerv\.homes\.pi must be a list of strings"):
        logic.build(raw(homes={"pi": "alice"}), REF)


def test_a_flake_without_configurations_is_an_error_naming_the_option():
    with pytest.raises(logic.FlakeError, match="option flake: .* neither nixosConfigurations nor darwin"):
        logic.build({"hasOutputs": False, "nixosConfigurations": {}, "darwinConfigurations": {}}, REF)


def test_tags_must_be_a_list_of_strings():
    with pytest.raises(logic.FlakeError, match=r"nerv\.tags\.pi must be a list of strings"):
        logic.build(raw(tags={"pi": "edge"}), REF)


def test_health_checks_become_a_host_variable():
    model = logic.build(raw(healthChecks={"pi": ["systemctl is-active unbound"], "box": []}), REF)
    assert model.hosts["pi"]["nerv_health_checks"] == ["systemctl is-active unbound"]
    assert model.hosts["box"]["nerv_health_checks"] == []
    assert "nerv_health_checks" not in model.hosts["mac"]
    with pytest.raises(logic.FlakeError, match=r"nerv\.healthChecks\.pi must be a list of strings"):
        logic.build(raw(healthChecks={"pi": "true"}), REF)


def test_the_checks_a_configuration_declares_come_first_and_once():
    hosts = {"pi": {"system": "aarch64-linux", "healthChecks": ["systemctl is-active bind.service"]},
             "box": {"system": "x86_64-linux", "healthChecks": None}}  # fmt: skip
    checks = {"pi": ["dig +short @127.0.0.1 pi.lan", "systemctl is-active bind.service"]}
    model = logic.build(raw(nixosConfigurations=hosts, healthChecks=checks), REF)
    wanted = ["systemctl is-active bind.service", "dig +short @127.0.0.1 pi.lan"]
    assert model.hosts["pi"]["nerv_health_checks"] == wanted
    assert "nerv_health_checks" not in model.hosts["box"]
    hosts["box"]["healthChecks"] = "true"
    with pytest.raises(logic.FlakeError, match=r"nixosConfigurations\.box\.config\.nerv\.healthChecks must be a list"):
        logic.build(raw(nixosConfigurations=hosts), REF)


def test_missing_system_and_orphan_deploy_node_warn():
    model = logic.build(
        raw(nixosConfigurations={"odd": {"system": None}}, darwinConfigurations={}, deploy={"gone": {}}), REF
    )
    assert model.groups == {"nixos": ["odd"]}
    assert any("nixosConfigurations.odd names no system" in w for w in model.warnings)
    assert any("deploy.nodes.gone has no" in w for w in model.warnings)


def test_one_name_in_both_outputs_keeps_the_nixos_one():
    model = logic.build(raw(darwinConfigurations={"pi": {"system": "aarch64-darwin"}}), REF)
    assert model.hosts["pi"]["nerv_flake_platform"] == "nixos"
    assert "darwin" not in model.groups
    assert any("both a NixOS and a darwin" in w for w in model.warnings)


def test_digest_changes_with_any_file_but_not_with_git_metadata(tmp_path):
    (tmp_path / "flake.nix").write_text("{ outputs = _: {}; }")
    (tmp_path / "flake.lock").write_text("{}")
    (tmp_path / "hosts").mkdir()
    (tmp_path / "hosts" / "pi.nix").write_text("{ }")
    first = logic.digest(str(tmp_path), "path:x")
    assert logic.digest(str(tmp_path), "path:x") == first, "same files, same digest"
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "index").write_text("changes on every git command")
    assert logic.digest(str(tmp_path), "path:x") == first
    assert logic.digest(str(tmp_path), "path:y") != first, "another reference"
    (tmp_path / "flake.lock").write_text('{"version": 7}')
    locked = logic.digest(str(tmp_path), "path:x")
    assert locked != first
    (tmp_path / "hosts" / "pi.nix").write_text("{ x = 1; }")
    assert logic.digest(str(tmp_path), "path:x") not in (first, locked)
    assert logic.digest(None, "github:a/b") == logic.digest(None, "github:a/b") != logic.digest(None, "github:a/c")


def test_renaming_a_file_changes_the_digest(tmp_path):
    (tmp_path / "a.nix").write_text("{ }")
    before = logic.digest(str(tmp_path), "r")
    (tmp_path / "a.nix").rename(tmp_path / "b.nix")
    assert logic.digest(str(tmp_path), "r") != before


def test_eval_args_pass_the_reference_as_json_inside_the_expression():
    argv = logic.eval_args('path:/srv/odd "dir" ${x}')
    assert argv[:2] == ["eval", "--json"] and "--impure" in argv
    expression = argv[-1]
    assert json.dumps(json.dumps('path:/srv/odd "dir" ${x}')) in expression
    assert "toplevel" not in expression, "the closure is never evaluated"


def test_missing_nix_names_the_option(tmp_path):
    with pytest.raises(logic.FlakeError, match="option nix: command .*not-a-nix.* not found"):
        logic.evaluate(str(tmp_path / "not-a-nix"), REF)


def test_symlinks_count_by_their_target(tmp_path):
    (tmp_path / "flake.nix").write_text("{ }")
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    (tmp_path / "modules").symlink_to("one")
    before = logic.digest(str(tmp_path), "r")
    (tmp_path / "modules").unlink()
    (tmp_path / "modules").symlink_to("two")
    assert logic.digest(str(tmp_path), "r") != before
