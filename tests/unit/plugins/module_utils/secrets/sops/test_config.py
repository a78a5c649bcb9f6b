""".sops.yaml: found upwards, first matching rule wins, rendered per site; dotenv metadata flattening."""

from __future__ import annotations

import pytest
import yaml

from ansible_collections.nerv.homelab.plugins.module_utils.secrets.age import SopsError
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops import config, stores

ADMIN = "age1prquxwcyd8xat0p3wep7q5mtk0yw4zx7kj755j32tye9dwht8q4qdxvdc7"
HOST_A = "age1pya4cp2rnpjdn5cq02flau85thavutn4v4m5z3kcgcucyl7j3ewqsfcd3m"


def _write_config(path, rules):
    path.write_text(yaml.safe_dump({"creation_rules": rules}))


def test_the_config_is_found_above_the_file_and_paths_are_relative_to_it(tmp_path):
    _write_config(
        tmp_path / ".sops.yaml",
        [{"path_regex": "^secrets/hosts/a/", "age": f"{ADMIN},{HOST_A}"}, {"key_groups": [{"age": [ADMIN]}]}],
    )
    (tmp_path / "secrets" / "hosts" / "a").mkdir(parents=True)
    rule = config.resolve(str(tmp_path / "secrets" / "hosts" / "a" / "x.sops.yaml"))
    assert rule.recipients == [ADMIN, HOST_A] and rule.index == 0
    assert config.resolve(str(tmp_path / "secrets" / "other.yaml")).recipients == [ADMIN]


def test_no_matching_rule_is_an_error(tmp_path):
    _write_config(tmp_path / ".sops.yaml", [{"path_regex": "^nothing$", "age": ADMIN}])
    with pytest.raises(SopsError, match="no creation rule"):
        config.resolve(str(tmp_path / "f.yaml"))


def test_rules_with_other_key_types_or_shamir_are_refused(tmp_path):
    _write_config(tmp_path / ".sops.yaml", [{"pgp": "ABCD", "age": ADMIN}])
    with pytest.raises(SopsError, match="age recipients only"):
        config.resolve(str(tmp_path / "f.yaml"))
    _write_config(tmp_path / ".sops.yaml", [{"key_groups": [{"age": [ADMIN]}, {"age": [HOST_A]}]}])
    with pytest.raises(SopsError, match="Shamir"):
        config.resolve(str(tmp_path / "f.yaml"))


def test_site_rules_give_each_file_exactly_its_readers():
    rules = config.site_rules(
        [ADMIN],
        [{"name": "a", "recipient": HOST_A}, {"name": "b", "recipient": None}],
        [{"path_regex": "^secrets/k3s\\.sops\\.yaml$", "hosts": "all"}],
        "secrets/hosts",
        ["^secrets/host-keys/"],
    )
    assert rules == [
        {"path_regex": "^secrets/host-keys/", "key_groups": [{"age": [ADMIN]}]},
        {"path_regex": "^secrets/hosts/a/", "key_groups": [{"age": [ADMIN, HOST_A]}]},
        {"path_regex": "^secrets/k3s\\.sops\\.yaml$", "key_groups": [{"age": [ADMIN, HOST_A]}]},
        {"key_groups": [{"age": [ADMIN]}]},
    ]


def test_a_shared_rule_naming_a_host_without_a_key_is_refused():
    with pytest.raises(SopsError, match="without a key: b"):
        config.site_rules([ADMIN], [], [{"path_regex": "x", "hosts": ["b"]}], "secrets/hosts", [])


def test_rendered_rules_resolve_like_sops(tmp_path):
    rules = config.site_rules(
        [ADMIN], [{"name": "a", "recipient": HOST_A}], [], "secrets/hosts", ["^secrets/host-keys/"]
    )
    (tmp_path / ".sops.yaml").write_text(config.render(rules, "header"))
    assert config.resolve(str(tmp_path / "secrets/host-keys/a.sops.yaml")).recipients == [ADMIN]
    assert config.resolve(str(tmp_path / "secrets/hosts/a/app.yaml")).recipients == [ADMIN, HOST_A]


def test_dotenv_metadata_flattens_like_sops():
    meta = {"age": [{"recipient": "r", "enc": "a\nb"}], "lastmodified": "t", "mac_only_encrypted": True}
    flat = stores.flatten(meta)
    assert flat == {
        "age__list_0__map_recipient": "r",
        "age__list_0__map_enc": "a\nb",
        "lastmodified": "t",
        "mac_only_encrypted": True,
    }
    assert stores.unflatten(flat) == meta
