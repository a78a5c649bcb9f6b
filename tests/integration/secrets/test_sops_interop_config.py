""".sops.yaml, key paths and refusals against the real sops 3.11, so that ours follow what the binary does.

Which `.sops.yaml` sops uses and which creation rule it applies are pinned by running `sops encrypt` in chosen
working directories and reading the recipients it wrote; `sops_config.find_config` and `resolve` must pick the same
ones. Keys whose names hold a dot are addressed with sops' index syntax (`["a.b"]`) on both sides. Files and rules
needing more than one group of age keys are refused, naming the feature. The rules `playbooks/keys.yml` writes for a
site give each kind of file of a site exactly the readers the project expects, under the real sops.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from ansible_collections.nerv.homelab.plugins.module_utils.secrets import age
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.age import SopsError
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops import config as sops_config
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops import document as sops
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops import files as sops_files

pyrage = pytest.importorskip("pyrage", reason="pyrage (requirements.txt) is needed for age")

CANARY = "canary-Dotted-Key-5e1f"
NOT_FOUND = "config file not found, or has no creation rules"


@pytest.fixture(autouse=True)
def _no_sops_config(monkeypatch):
    """A SOPS_CONFIG of the caller's would name the config for our side and for the playbooks run here."""
    monkeypatch.delenv("SOPS_CONFIG", raising=False)


def recipients(count: int) -> list[str]:
    return [str(pyrage.x25519.Identity.generate().to_public()) for _index in range(count)]


def age_of(meta: dict) -> list[str]:
    groups = meta.get("key_groups") or [meta]
    return [stanza["recipient"] for group in groups for stanza in group.get("age") or []]


def sops_picks(real_sops, argument: str, cwd: Path, env: dict | None = None) -> list[str] | None:
    """The recipients `sops encrypt argument`, run in cwd, encrypts to; None when it finds no config."""
    run = real_sops.run("encrypt", argument, cwd=cwd, env=env, check=False)
    if run.returncode != 0:
        assert NOT_FOUND in run.stderr, run.describe()
        return None
    return age_of(yaml.safe_load(run.stdout)["sops"])


def we_pick(argument: str, cwd: Path, env: dict | None = None) -> list[str] | None:
    found = sops_config.find_config(str(cwd), environ=env or {})
    if found is None:
        with pytest.raises(SopsError, match=r"no \.sops\.yaml in .* or above it, where sops looks"):
            sops_config.resolve(argument, cwd=str(cwd))
        return None
    return sops_config.resolve(argument, found, cwd=str(cwd)).recipients


def rules_file(path: Path, rules: list) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"creation_rules": rules}, sort_keys=False))


def plain_file(path: Path, text: str = "x: 1\n") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def tree(tmp_path):
    """tmp/site/.sops.yaml (host, sub, outside, default rules), tmp/site/sub/.sops.yaml, a .sops.yml elsewhere."""
    names = ["host", "sub", "outside", "admin", "nested", "yml"]
    keys = dict(zip(names, recipients(len(names)), strict=True))
    outside = f"^{re.escape(str(tmp_path))}/elsewhere/"
    rules_file(
        tmp_path / "site" / ".sops.yaml",
        [
            {"path_regex": "^secrets/hosts/a/", "age": keys["host"]},
            {"path_regex": "^sub/", "age": keys["sub"]},
            {"path_regex": outside, "age": keys["outside"]},
            {"age": keys["admin"]},
        ],
    )
    rules_file(tmp_path / "site" / "sub" / ".sops.yaml", [{"age": keys["nested"]}])
    rules_file(tmp_path / "yml" / ".sops.yml", [{"age": keys["yml"]}])
    for name in ("site/secrets/hosts/a/f.yaml", "site/secrets/other.yaml", "site/sub/g.yaml", "elsewhere/f.yaml"):
        plain_file(tmp_path / name)
    plain_file(tmp_path / "yml" / "f.yaml")
    return tmp_path, keys


# (working directory, file as given to sops, environment, the rule sops applies or None: no config found)
DISCOVERY = [
    ("site", "secrets/hosts/a/f.yaml", {}, "host"),
    ("site/secrets/hosts/a", "f.yaml", {}, "host"),  # matched relative to the config, not to the working dir
    ("site/secrets", "../secrets/hosts/a/f.yaml", {}, "host"),
    ("site", "{tmp}/site/secrets/hosts/a/f.yaml", {}, "host"),
    ("site", "secrets/other.yaml", {}, "admin"),
    (".", "site/secrets/hosts/a/f.yaml", {}, None),  # searched from the working directory up, not from the file
    ("site/sub", "g.yaml", {}, "nested"),  # the nearest .sops.yaml above the working directory wins
    ("site", "sub/g.yaml", {}, "sub"),  # ... even for a file under another .sops.yaml
    ("site", "{tmp}/elsewhere/f.yaml", {}, "outside"),  # a file outside the config's directory: its absolute path
    ("site", "../elsewhere/f.yaml", {}, "outside"),
    ("yml", "f.yaml", {}, None),  # .sops.yml is not read
    (".", "{tmp}/elsewhere/f.yaml", {"SOPS_CONFIG": "{tmp}/site/.sops.yaml"}, "outside"),
    ("site/sub", "g.yaml", {"SOPS_CONFIG": "../.sops.yaml"}, "sub"),  # relative to the working directory
]


@pytest.mark.parametrize(("cwd", "argument", "env", "rule"), DISCOVERY)
def test_we_pick_the_config_and_rule_sops_picks(real_sops, tree, cwd, argument, env, rule):
    tmp_path, keys = tree
    argument = argument.format(tmp=tmp_path)
    env = {name: value.format(tmp=tmp_path) for name, value in env.items()}
    expected = None if rule is None else [keys[rule]]
    assert sops_picks(real_sops, argument, tmp_path / cwd, env) == expected
    assert we_pick(argument, tmp_path / cwd, env) == expected


def test_sops_config_flag_names_the_config_as_sops_config_does(real_sops, tree):
    tmp_path, keys = tree
    rules = str(tmp_path / "site" / ".sops.yaml")
    run = real_sops.run("--config", rules, "encrypt", "elsewhere/f.yaml", cwd=tmp_path)
    assert age_of(yaml.safe_load(run.stdout)["sops"]) == [keys["outside"]]
    assert sops_config.resolve("elsewhere/f.yaml", rules, cwd=str(tmp_path)).recipients == [keys["outside"]]


def test_sops_warns_that_it_ignores_a_sops_yml(real_sops, tree):
    tmp_path, _keys = tree
    run = real_sops.run("encrypt", "f.yaml", cwd=tmp_path / "yml", check=False)
    assert run.returncode != 0 and 'ignoring \\".sops.yml\\"' in run.stderr, run.describe()
    with pytest.raises(SopsError, match=r"\.sops\.yml is ignored: sops reads only \.sops\.yaml"):
        sops_config.resolve("f.yaml", cwd=str(tmp_path / "yml"))


def test_sops_ignores_filename_regex_so_we_refuse_it(real_sops, tmp_path):
    first, second = recipients(2)
    rules_file(tmp_path / ".sops.yaml", [{"filename_regex": "^nothing$", "age": first}, {"age": second}])
    plain_file(tmp_path / "f.yaml")
    assert sops_picks(real_sops, "f.yaml", tmp_path) == [first], "sops applies the rule to every file"
    with pytest.raises(SopsError, match="filename_regex, which sops 3.11 ignores"):
        sops_config.resolve("f.yaml", cwd=str(tmp_path))


def play(*tasks) -> list:
    return [{"name": "sops", "hosts": "localhost", "gather_facts": False, "tasks": list(tasks)}]


def test_sops_file_finds_the_config_where_ansible_runs_it_as_sops_would(real_sops, ansible_cli, tree):
    """Ansible runs a local module in the playbook's directory: a playbook in the site directory needs no config,
    one elsewhere gives it (or SOPS_CONFIG); what it picks is what sops picks there."""
    tmp_path, keys = tree
    site = tmp_path / "site"
    made, elsewhere, refused = (site / "secrets" / "hosts" / "a" / name for name in ("m.yaml", "e.yaml", "r.yaml"))
    env = {"SOPS_AGE_KEY_FILE": str(real_sops.key_file), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    make = {"name": "make", "nerv.homelab.sops_file": {"path": str(made), "values": {"a": CANARY}}}
    in_site = site / "make.yml"
    in_site.write_text(yaml.safe_dump(play(make)))
    run = ansible_cli.playbook(in_site, env=env)
    assert run.rc == 0 and run.task("make")["recipients"] == [keys["host"]], run.describe()

    by_env = {"name": "env", "nerv.homelab.sops_file": {"path": str(elsewhere), "values": {"a": CANARY}}}
    by_env["environment"] = {"SOPS_CONFIG": str(site / ".sops.yaml")}
    none = {"name": "none", "nerv.homelab.sops_file": {"path": str(refused), "values": {"a": CANARY}}}
    run = ansible_cli.playbook(play({**by_env}, {**none, "ignore_errors": True}), env=env)
    assert run.task("env")["recipients"] == [keys["host"]], run.describe()
    assert "where sops looks" in run.task("none")["msg"] and not refused.exists()
    assert sops_picks(real_sops, "secrets/hosts/a/f.yaml", site) == [keys["host"]], "sops, beside the files made"


# ---- keys whose names hold a dot -----------------------------------------------------------------------------


def ids(real_sops):
    return age.load_identities({}, [str(real_sops.key_file)])


def extract(real_sops, path: Path, key: str) -> str:
    return real_sops.decrypt(path, "--extract", key)


def test_a_dotted_top_level_key_sops_wrote_is_read_and_updated_here(real_sops, tmp_path):
    path = tmp_path / "f.yaml"
    plain_file(path, "a.b: top\na:\n    b: nested\n")
    real_sops.encrypt_for(path)
    plain = sops_files.decrypt_file(str(path), ids(real_sops))
    assert sops.get_path(plain, sops.split_key('["a.b"]')) == "top"
    assert sops.get_path(plain, sops.split_key("a.b")) == "nested"

    plan = sops_files.plan_values(str(path), ids(real_sops), {'["a.b"]': CANARY}, [])
    assert plan.changed_keys == ['["a.b"]'] and plan.keys == ['["a.b"]', "a.b"]
    plan.apply()
    assert extract(real_sops, path, '["a.b"]') == CANARY
    assert extract(real_sops, path, '["a"]["b"]') == "nested"


def test_a_dotted_key_set_here_is_extracted_by_sops(real_sops, tmp_path):
    path = tmp_path / "f.yaml"
    values = sops_files.flatten_values({'["c.d"]': CANARY, "a": {"e.f": 5}, "g.h": "nested"})
    sops_files.plan_values(str(path), ids(real_sops), values, [], recipients=[real_sops.recipient]).apply()
    assert extract(real_sops, path, '["c.d"]') == CANARY
    assert extract(real_sops, path, '["a"]["e.f"]') == "5\n", "sops prints a string bare, other values as YAML"
    assert extract(real_sops, path, '["g"]["h"]') == "nested"
    assert real_sops.run("set", str(path), '["c.d"]', '"by sops"', cwd=tmp_path).returncode == 0
    assert sops_files.decrypt_file(str(path), ids(real_sops))["c.d"] == "by sops"


def test_sops_file_and_the_lookup_address_a_dotted_key_in_a_playbook(real_sops, ansible_cli, tmp_path):
    path = tmp_path / "app.sops.yaml"
    plain_file(path, "smtp.password: old\nsmtp:\n    host: mail\n")
    real_sops.encrypt_for(path)
    key = '["smtp.password"]'
    lookup = f"lookup('nerv.homelab.sops', '{path}', key='{key}')"
    plays = [
        {
            "name": "dotted",
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {"name": "set", "nerv.homelab.sops_file": {"path": str(path), "values": {key: CANARY}}},
                {"name": "read", "ansible.builtin.assert": {"that": [f"{lookup} == '{CANARY}'"], "quiet": True}},
            ],
        }
    ]
    env = {"SOPS_AGE_KEY_FILE": str(real_sops.key_file), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    run = ansible_cli.playbook(plays, "--diff", env=env)
    assert run.rc == 0, run.describe()
    assert run.task("set")["changed_keys"] == [key]
    assert CANARY not in run.output
    assert extract(real_sops, path, key) == CANARY
    assert extract(real_sops, path, '["smtp"]["host"]') == "mail"


# ---- refusals ----------------------------------------------------------------------------------------------------


def test_a_shamir_file_sops_made_is_refused_naming_shamir(real_sops, tmp_path):
    other = recipients(1)[0]
    rule = {"shamir_threshold": 2, "key_groups": [{"age": [real_sops.recipient]}, {"age": [other]}]}
    rules_file(tmp_path / ".sops.yaml", [rule])
    path = tmp_path / "f.yaml"
    plain_file(path)
    real_sops.encrypt_in_place(path, cwd=tmp_path)
    meta = yaml.safe_load(path.read_text())["sops"]
    assert meta["shamir_threshold"] == 2 and len(meta["key_groups"]) == 2
    with pytest.raises(SopsError, match=r"uses Shamir secret sharing \(key groups: 2, shamir_threshold: 2\)"):
        sops_files.decrypt_file(str(path), ids(real_sops))
    with pytest.raises(SopsError, match="Shamir secret sharing"):
        sops_config.resolve("g.yaml", cwd=str(tmp_path))


@pytest.mark.parametrize(
    ("entry", "feature"),
    [
        ("pgp:\n        - fp: 0123456789ABCDEF\n          enc: x\n", "PGP"),
        ("kms:\n        - arn: arn:aws:kms:eu-west-1:1:key/k\n          enc: x\n", "AWS KMS"),
        ("gcp_kms:\n        - resource_id: projects/p/keyRings/r/cryptoKeys/k\n          enc: x\n", "GCP KMS"),
        ("azure_kv:\n        - vault_url: https://v.vault.azure.net\n          enc: x\n", "Azure Key Vault"),
        ("hc_vault:\n        - vault_address: https://vault:8200\n          enc: x\n", "HashiCorp Vault"),
        ("hckms:\n        - key_id: region:key\n          enc: x\n", "HuaweiCloud KMS"),
    ],
)
def test_a_sops_file_with_other_keys_is_refused_naming_them(real_sops, tmp_path, entry, feature):
    path = tmp_path / "f.yaml"
    plain_file(path)
    real_sops.encrypt_for(path)
    path.write_text(path.read_text().replace("sops:\n", f"sops:\n    {entry}", 1))
    with pytest.raises(SopsError, match=f"has {feature} keys"):
        sops_files.decrypt_file(str(path), ids(real_sops))


# ---- the site's rules under the real sops --------------------------------------------------------------------


@pytest.fixture
def site(tmp_path):
    """A site directory with the .sops.yaml keys.yml renders (site_rules, render) and one file of each kind."""
    admin, host_a, host_b = recipients(3)
    hosts = [{"name": "a", "recipient": host_a}, {"name": "b", "recipient": host_b}]
    shared = [
        {"path_regex": r"^secrets/k3s\.sops\.yaml$"},
        {"path_regex": r"^secrets/apps/.*\.yaml$", "hosts": ["a"], "encrypted_regex": "^(data|stringData)$"},
    ]
    admin_only = [r"^secrets/host\-keys/", r"^secrets/cluster/flux\.agekey\.sops\.yaml$"]
    rules = sops_config.site_rules([admin], hosts, shared, "secrets/hosts", admin_only)
    root = tmp_path / "inventory" / "home"
    root.mkdir(parents=True)
    (root / ".sops.yaml").write_text(sops_config.render(rules, "the site's rules"))
    expected = {
        "secrets/host-keys/a.sops.yaml": [admin],
        "secrets/cluster/flux.agekey.sops.yaml": [admin],
        "secrets/hosts/a/app.sops.yaml": [admin, host_a],
        "secrets/hosts/b/app.sops.yaml": [admin, host_b],
        "secrets/k3s.sops.yaml": [admin, host_a, host_b],
        "secrets/apps/grafana.yaml": [admin, host_a],
        "secrets/proxmox.sops.yaml": [admin],
    }
    for name in expected:
        plain_file(root / name, "kind: Secret\ndata:\n    password: x\n")
    return root, expected


def test_each_file_of_a_site_gets_its_readers_from_the_real_sops_run_in_the_site(real_sops, site):
    root, expected = site
    for name, readers in expected.items():
        assert sops_picks(real_sops, name, root) == readers, name
        assert sops_config.resolve(name, cwd=str(root)).recipients == readers, name


def test_sops_config_from_elsewhere_gives_the_same_readers(real_sops, site, tmp_path):
    root, expected = site
    env = {"SOPS_CONFIG": str(root / ".sops.yaml")}
    for name, readers in expected.items():
        argument = str((root / name).relative_to(tmp_path))
        assert sops_picks(real_sops, argument, tmp_path, env) == readers, name
        assert we_pick(argument, tmp_path, env) == readers, name
    assert sops_picks(real_sops, "inventory/home/secrets/k3s.sops.yaml", tmp_path) is None, "nothing to find here"


def test_the_encrypted_regex_of_a_shared_rule_is_what_sops_applies(real_sops, site):
    root, _expected = site
    name = "secrets/apps/grafana.yaml"
    written = yaml.safe_load(real_sops.run("encrypt", name, cwd=root).stdout)
    ours = sops_config.resolve(name, cwd=str(root)).rules
    assert (ours.kind, ours.value) == ("encrypted_regex", written["sops"]["encrypted_regex"])
    assert written["kind"] == "Secret" and written["data"]["password"].startswith("ENC[")
    assert ours.encrypts(["data", "password"]) and not ours.encrypts(["kind"])
