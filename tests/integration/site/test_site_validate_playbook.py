"""nerv.homelab.site_validate in a real playbook: the shipped sites pass unchanged, a broken one fails loudly."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest
import yaml

from .._sites import INVENTORY, SHIPPED_SITES, site_file, site_schema

MODULE = "nerv.homelab.site_validate"


def validate(name, **options):
    return {"name": name, MODULE: options}


def play(*tasks):
    return [{"name": "Site validation", "hosts": "localhost", "gather_facts": False, "tasks": list(tasks)}]


def schema_defaults(site):
    """(section, key, default) for every defaulted key a section present in the site leaves out."""
    found = []
    for section, spec in site_schema()["properties"].items():
        if isinstance(site.get(section), dict):
            for key, prop in spec.get("properties", {}).items():
                if "default" in prop and key not in site[section]:
                    found.append((section, key, prop["default"]))
    return found


@pytest.mark.parametrize("site", SHIPPED_SITES)
def test_shipped_site_validates_unchanged_twice_and_in_check_mode(ansible_cli, site):
    path = site_file(site)
    tasks = (
        validate("Validate", path=str(path)),
        validate("Validate again", path=str(path)),
        dict(validate("Validate in check mode", path=str(path)), check_mode=True),
        {"name": "Site file of the inventory", "ansible.builtin.debug": {"var": "nerv_site_file"}},
    )
    run = ansible_cli.playbook(play(*tasks), inventory=INVENTORY / site)
    assert run.rc == 0, run.describe()
    assert run.stats()["failures"] == 0 and run.stats()["changed"] == 0, run.describe()

    results = [run.task(name) for name in ("Validate", "Validate again", "Validate in check mode")]
    for result in results:
        assert result["status"] == "ok" and result["changed"] is False, result
        assert result["problems"] == [], result["problems"]
    first = results[0]
    assert all(r["site"] == first["site"] and r["plan"] == first["plan"] for r in results[1:])
    assert Path(run.task("Site file of the inventory")["nerv_site_file"]).resolve() == path

    source = yaml.safe_load(path.read_text())
    normal = first["site"]
    assert normal["site"]["name"] == source["site"]["name"]
    assert [h["name"] for h in normal["hosts"]] == [h["name"] for h in source["hosts"]]
    assert [h["address"] for h in normal["hosts"]] == [h["ip"].split("/")[0] for h in source["hosts"]]
    template = normal.get("template", {})
    for given, filled in zip(source["hosts"], normal["hosts"], strict=True):
        for key in ("cores", "memory", "disk"):
            if given["kind"] == "vm" and key not in given:
                assert filled[key] == template[key], f"{given['name']}.{key} does not take the template's"
    for section, key, default in schema_defaults(source):
        assert normal[section][key] == default, f"{section}.{key} is not filled with its default {default!r}"

    phases = [step["phase"] for step in first["plan"]]
    assert phases and len(phases) == len(set(phases)), phases
    assert {"phase", "summary", "targets", "implemented"} <= set(first["plan"][0])
    assert first["plan"][0] == dict(first["plan"][0], phase="validate", implemented=True)


@pytest.fixture
def broken_site(tmp_path):
    """The demo site with a typo key, a duplicate address and an inline secret; returns (path, canary)."""
    site = yaml.safe_load(site_file("demo").read_text())
    canary = "CANARY-" + secrets.token_hex(12)
    site["hostz"] = [dict(site["hosts"][0])]
    site["hosts"][1]["ip"] = site["hosts"][0]["ip"]
    site["proxmox"]["token_secret"] = canary
    path = tmp_path / "broken" / "site.yml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(site, sort_keys=False))
    return path, canary


BROKEN_PATHS = {"hostz", "hosts[1].ip", "proxmox.token_secret"}


def assert_reports_every_problem(result):
    assert result["status"] == "failed", result
    lines = result["msg"].splitlines()
    for field in BROKEN_PATHS:
        named = [line for line in lines if line.startswith(field + ": ")]
        assert len(named) == 1, f"{field} is not named once in msg:\n{result['msg']}"
        problem, fix = named[0][len(field) + 2 :].split(". Fix: ", 1)
        assert problem and fix, named[0]
    problems = {p["path"]: p for p in result["problems"]}
    assert set(problems) == BROKEN_PATHS, result["problems"]
    assert all(p["message"] and p["fix"] for p in problems.values()), result["problems"]
    assert "'hosts'" in problems["hostz"]["fix"], "no did-you-mean hint for the typo"


def assert_secret_hidden(run, canary, site_path):
    assert canary in site_path.read_text(), "the canary never reached the site file"
    for where, text in (("stdout", run.stdout), ("stderr", run.stderr), ("task results", json.dumps(run.results))):
        assert canary not in text, f"the inline secret leaks into {where}"


def test_broken_site_file_fails_naming_every_field_and_never_shows_the_secret(ansible_cli, broken_site):
    path, canary = broken_site
    run = ansible_cli.playbook(play(validate("Validate the broken file", path=str(path))), "-vvv")

    assert run.rc == 2 and run.stats()["failures"] == 1, run.describe()
    assert_reports_every_problem(run.task("Validate the broken file"))
    assert "hosts[1].ip: " in run.stdout, "the human output does not name the problems"
    assert_secret_hidden(run, canary, path)


def test_broken_inline_site_fails_and_never_shows_the_secret(ansible_cli, broken_site):
    """Given as site=, the secret also sits in the module arguments the result echoes as invocation."""
    path, canary = broken_site
    inline = f"{{{{ lookup('ansible.builtin.file', '{path}') | from_yaml }}}}"
    task = validate("Validate the broken site inline", site=inline)
    run = ansible_cli.playbook(play(task), "-vvv")

    assert run.rc == 2 and run.stats()["failures"] == 1, run.describe()
    assert_reports_every_problem(run.task("Validate the broken site inline"))
    assert_secret_hidden(run, canary, path)
