"""ansible-doc finds the collection's modules from a plain checkout and shows their full documentation."""

from __future__ import annotations

import pytest
import yaml

from .._sites import REPO

MODULE = "nerv.homelab.site_validate"
MODULES = sorted(p.stem for p in (REPO / "plugins" / "modules").glob("*.py") if not p.name.startswith("_"))


def doc_json(ansible_cli, fqcn):
    run = ansible_cli.doc("--json", fqcn)
    assert run.rc == 0, run.describe()
    assert "[WARNING]" not in run.stderr, run.describe()
    return run.json()[fqcn]


def test_site_validate_text_doc_has_every_section(ansible_cli):
    run = ansible_cli.doc(MODULE)
    assert run.rc == 0, run.describe()
    assert "[WARNING]" not in run.stderr and "[ERROR]" not in run.stderr, run.describe()
    assert "\x1b[" not in run.stdout, "ANSIBLE_NOCOLOR is not honoured"
    for heading in ("OPTIONS", "EXAMPLES", "RETURN VALUES"):
        assert heading in run.stdout, f"no {heading} section\n{run.stdout}"
    assert "collections/ansible_collections/nerv/homelab/plugins/modules/site_validate.py" in run.stdout


def test_site_validate_json_doc_states_its_interface(ansible_cli):
    doc = doc_json(ansible_cli, MODULE)
    options = doc["doc"]["options"]
    assert options["path"]["type"] == "path"
    assert options["site"]["type"] == "dict"
    assert doc["doc"]["collection"] == "nerv.homelab"
    assert doc["doc"]["attributes"]["check_mode"]["support"] == "full"
    returns = doc["return"]
    assert {"site", "plan", "problems"} <= set(returns), sorted(returns)
    assert returns["problems"]["returned"] == "always"
    assert any("warnings" in key for key in returns), f"no warnings in RETURN: {sorted(returns)}"
    examples = yaml.safe_load(doc["examples"])
    assert any(MODULE in task for task in examples), doc["examples"]


def test_site_validate_examples_pass_syntax_check(ansible_cli):
    examples = yaml.safe_load(doc_json(ansible_cli, MODULE)["examples"])
    play = [{"name": "Examples of " + MODULE, "hosts": "localhost", "gather_facts": False, "tasks": examples}]
    run = ansible_cli.playbook(play, "--syntax-check")
    assert run.rc == 0, run.describe()


def test_collection_listing_names_every_module(ansible_cli):
    run = ansible_cli.doc("-t", "module", "-l", "nerv.homelab", "--json")
    assert run.rc == 0, run.describe()
    assert sorted(run.json()) == [f"nerv.homelab.{name}" for name in MODULES]


@pytest.mark.parametrize("name", MODULES)
def test_every_module_documents_options_examples_and_return(ansible_cli, name):
    doc = doc_json(ansible_cli, f"nerv.homelab.{name}")
    assert doc["doc"]["short_description"], name
    assert doc["doc"].get("options") is not None, f"{name}: no options"
    assert yaml.safe_load(doc["examples"] or "null"), f"{name}: no EXAMPLES"
    assert doc["return"], f"{name}: no RETURN"


def test_the_proxmox_inventory_documents_its_connection_environment(ansible_cli):
    run = ansible_cli.doc("-t", "inventory", "--json", "nerv.homelab.proxmox")
    assert run.rc == 0 and "[WARNING]" not in run.stderr, run.describe()
    options = run.json()["nerv.homelab.proxmox"]["doc"]["options"]
    expected = {"url": "PROXMOX_URL", "token_id": "PROXMOX_TOKEN_ID", "token_secret": "PROXMOX_TOKEN_SECRET"}
    expected |= {"ca_path": "PROXMOX_CA_PATH", "validate_certs": "PROXMOX_VALIDATE_CERTS"}
    for option, variable in expected.items():
        assert {"name": variable} in options[option]["env"], options[option]
    assert {"site_file", "cidr", "workers", "want_config", "cache", "compose", "keyed_groups"} <= set(options)
