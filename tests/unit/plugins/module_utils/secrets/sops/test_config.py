""".sops.yaml: found as sops 3.11 finds it (from the working directory up), first matching rule wins, refusals naming
the feature, rendered per site; dotenv metadata flattening."""

from __future__ import annotations

import pytest
import yaml

from ansible_collections.nerv.homelab.plugins.module_utils.secrets.age import SopsError
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops import config, text_stores

ADMIN = "age1prquxwcyd8xat0p3wep7q5mtk0yw4zx7kj755j32tye9dwht8q4qdxvdc7"
HOST_A = "age1pya4cp2rnpjdn5cq02flau85thavutn4v4m5z3kcgcucyl7j3ewqsfcd3m"


@pytest.fixture(autouse=True)
def _no_sops_config(monkeypatch):
    """SOPS_CONFIG of the caller's environment would name the config for every test."""
    monkeypatch.delenv("SOPS_CONFIG", raising=False)


def _write_config(path, rules):
    path.write_text(yaml.safe_dump({"creation_rules": rules}))


def test_the_config_is_found_from_the_working_directory_and_paths_are_relative_to_it(tmp_path, monkeypatch):
    _write_config(
        tmp_path / ".sops.yaml",
        [{"path_regex": "^secrets/hosts/a/", "age": f"{ADMIN},{HOST_A}"}, {"key_groups": [{"age": [ADMIN]}]}],
    )
    (tmp_path / "secrets" / "hosts" / "a").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "secrets" / "hosts" / "a")
    rule = config.resolve("x.sops.yaml")
    assert rule.recipients == [ADMIN, HOST_A] and rule.index == 0
    assert config.resolve(str(tmp_path / "secrets" / "other.yaml")).recipients == [ADMIN]


def test_the_search_starts_at_the_working_directory_not_at_the_file(tmp_path):
    site = tmp_path / "site"
    (site / "secrets").mkdir(parents=True)
    _write_config(site / ".sops.yaml", [{"age": ADMIN}])
    assert config.find_config(str(site / "secrets"), environ={}) == str(site / ".sops.yaml")
    assert config.find_config(str(tmp_path), environ={}) is None
    with pytest.raises(SopsError, match=r"no \.sops\.yaml in .* or above it, where sops looks"):
        config.resolve(str(site / "secrets" / "f.yaml"), cwd=str(tmp_path))


def test_the_nearest_config_above_the_working_directory_wins(tmp_path):
    _write_config(tmp_path / ".sops.yaml", [{"age": ADMIN}])
    (tmp_path / "sub").mkdir()
    _write_config(tmp_path / "sub" / ".sops.yaml", [{"age": HOST_A}])
    assert config.find_config(str(tmp_path / "sub"), environ={}) == str(tmp_path / "sub" / ".sops.yaml")
    assert config.find_config(str(tmp_path), environ={}) == str(tmp_path / ".sops.yaml")


def test_a_sops_yml_is_ignored_as_sops_ignores_it(tmp_path):
    _write_config(tmp_path / ".sops.yml", [{"age": ADMIN}])
    assert config.find_config(str(tmp_path), environ={}) is None
    with pytest.raises(SopsError, match=r"\.sops\.yml is ignored: sops reads only \.sops\.yaml"):
        config.resolve("f.yaml", cwd=str(tmp_path))


def test_sops_config_in_the_environment_names_the_config(tmp_path):
    _write_config(tmp_path / "rules.yaml", [{"age": ADMIN}])
    _write_config(tmp_path / ".sops.yaml", [{"age": HOST_A}])
    assert config.find_config(str(tmp_path), environ={"SOPS_CONFIG": "rules.yaml"}) == str(tmp_path / "rules.yaml")


@pytest.mark.parametrize(
    ("path", "matched"),
    [
        ("/site/secrets/a.yaml", "secrets/a.yaml"),
        ("/site/../site/secrets/a.yaml", "secrets/a.yaml"),
        ("/elsewhere/a.yaml", "/elsewhere/a.yaml"),
        ("/site-b/a.yaml", "/site-b/a.yaml"),
    ],
)
def test_path_regex_sees_the_path_relative_to_the_config_or_else_absolute(path, matched):
    assert config.rule_path(path, "/site/.sops.yaml") == matched


def test_filename_regex_which_sops_ignores_is_refused(tmp_path):
    _write_config(tmp_path / ".sops.yaml", [{"filename_regex": "nothing", "age": ADMIN}])
    with pytest.raises(SopsError, match="filename_regex, which sops 3.11 ignores"):
        config.resolve("f.yaml", cwd=str(tmp_path))


def test_no_matching_rule_is_an_error(tmp_path):
    _write_config(tmp_path / ".sops.yaml", [{"path_regex": "^nothing$", "age": ADMIN}])
    with pytest.raises(SopsError, match="no creation rule"):
        config.resolve(str(tmp_path / "f.yaml"), str(tmp_path / ".sops.yaml"))


@pytest.mark.parametrize(
    ("rule", "feature"),
    [
        ({"pgp": "ABCD", "age": ADMIN}, r"PGP keys \(pgp\)"),
        ({"kms": "arn:aws:kms:eu-west-1:1:key/x", "age": ADMIN}, r"AWS KMS keys \(kms\)"),
        ({"gcp_kms": "projects/p/locations/l/keyRings/r/cryptoKeys/k", "age": ADMIN}, "GCP KMS keys"),
        ({"azure_keyvault": "https://v.vault.azure.net/keys/k/1", "age": ADMIN}, "Azure Key Vault keys"),
        ({"hc_vault_transit_uri": "https://vault:8200/v1/transit/keys/k", "age": ADMIN}, "HashiCorp Vault keys"),
        ({"hckms": "region:key", "age": ADMIN}, "HuaweiCloud KMS keys"),
        ({"key_groups": [{"age": [ADMIN], "pgp": ["ABCD"]}]}, r"PGP keys \(pgp\)"),
        ({"key_groups": [{"age": [ADMIN], "hc_vault": ["https://vault/v1/transit/keys/k"]}]}, "HashiCorp Vault"),
        ({"key_groups": [{"age": [ADMIN]}, {"age": [HOST_A]}]}, r"Shamir secret sharing \(key groups: 2"),
        ({"shamir_threshold": 2, "key_groups": [{"age": [ADMIN]}]}, "Shamir secret sharing"),
        ({"key_groups": [{"merge": [{"age": [HOST_A]}], "age": [ADMIN]}]}, r"merges key groups \(merge\)"),
    ],
)
def test_creation_rules_needing_more_than_age_are_refused_naming_the_feature(tmp_path, rule, feature):
    _write_config(tmp_path / ".sops.yaml", [rule])
    with pytest.raises(SopsError, match=feature):
        config.resolve("f.yaml", cwd=str(tmp_path))


def test_one_key_group_with_a_threshold_of_one_is_plain_age(tmp_path):
    _write_config(tmp_path / ".sops.yaml", [{"shamir_threshold": 1, "key_groups": [{"age": [ADMIN], "pgp": []}]}])
    assert config.resolve("f.yaml", cwd=str(tmp_path)).recipients == [ADMIN]


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


def test_a_host_being_rotated_is_named_by_both_keys_in_each_of_its_rules():
    new = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"
    hosts = [{"name": "a", "recipient": HOST_A, "next_recipient": new}]
    rules = config.site_rules([ADMIN], hosts, [{"path_regex": "^secrets/common/", "hosts": ["a"]}], "secrets", [])
    assert [r["key_groups"] for r in rules] == [[{"age": [ADMIN, HOST_A, new]}]] * 2 + [[{"age": [ADMIN]}]]


def test_resolve_in_matches_rules_not_yet_written(tmp_path):
    rules = config.site_rules([ADMIN], [{"name": "a", "recipient": HOST_A}], [], "secrets", [])
    where = str(tmp_path / ".sops.yaml")
    mine = str(tmp_path / "secrets" / "a" / "x.sops.yaml")
    assert config.resolve_in(rules, mine, where).recipients == [ADMIN, HOST_A]
    assert config.resolve_in(rules, str(tmp_path / "secrets" / "b.sops.yaml"), where).index == 1
    assert not (tmp_path / ".sops.yaml").exists()


def test_rendered_rules_resolve_like_sops(tmp_path):
    rules = config.site_rules(
        [ADMIN], [{"name": "a", "recipient": HOST_A}], [], "secrets/hosts", ["^secrets/host-keys/"]
    )
    (tmp_path / ".sops.yaml").write_text(config.render(rules, "header"))
    assert config.resolve("secrets/host-keys/a.sops.yaml", cwd=str(tmp_path)).recipients == [ADMIN]
    assert config.resolve("secrets/hosts/a/app.yaml", cwd=str(tmp_path)).recipients == [ADMIN, HOST_A]


def test_dotenv_metadata_flattens_like_sops():
    meta = {"age": [{"recipient": "r", "enc": "a\nb"}], "lastmodified": "t", "mac_only_encrypted": True}
    flat = text_stores.flatten(meta)
    assert flat == {
        "age__list_0__map_recipient": "r",
        "age__list_0__map_enc": "a\nb",
        "lastmodified": "t",
        "mac_only_encrypted": True,
    }
    assert text_stores.unflatten(flat) == meta
