"""flux_bootstrap against the Kubernetes API emulator with a recording fake flux CLI on PATH (the real one needs a
cluster and a Git host): bootstrapped once, then left alone; the token only ever in the CLI's environment."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "hacking"))

from kube_emulator import KINDS, ready_status  # noqa: E402

FAKE = Path(__file__).resolve().parents[1] / "fixtures" / "fake_flux.py"
TOKEN = "ghp_canaryTOKEN0123456789abcdefABCDEF"
AGE_KEY = "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQCANARY"


@pytest.fixture
def api(kube_api):
    return kube_api


@pytest.fixture
def rig(tmp_path, api):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "flux").write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE}" "$@"\n')
    (bin_dir / "flux").chmod(0o755)
    age = tmp_path / "flux-age.key"
    age.write_text(f"# cluster key\n{AGE_KEY}\n")
    age.chmod(0o600)
    return {"kubeconfig": api.kubeconfig(tmp_path / "kubeconfig"), "bin": bin_dir, "age": age,
            "record": tmp_path / "record.jsonl"}  # fmt: skip


def bootstrap(ansible_cli, rig, check=False, env=None, **overrides):
    options = {"kubeconfig": rig["kubeconfig"], "owner": "example-homelab", "repository": "home-gitops",
               "path": "clusters/home", "personal": True, "age_key_file": str(rig["age"]), "timeout": 10,
               "interval": 0.2, **overrides}  # fmt: skip
    play = [{"name": "f", "hosts": "localhost", "gather_facts": False,
             "tasks": [{"name": "bootstrap", "nerv.homelab.flux_bootstrap": options}]}]  # fmt: skip
    environment = {"PATH": f"{rig['bin']}:/usr/local/bin:/usr/bin:/bin", "FAKE_FLUX_RECORD": str(rig["record"]),
                   "FAKE_FLUX_EXPECT_TOKEN": TOKEN, "GITHUB_TOKEN": TOKEN, **(env or {})}  # fmt: skip
    result = ansible_cli.playbook(play, "-v", env=environment, check=check)
    assert TOKEN not in result.output and "CANARY" not in result.output, result.describe()
    return result, result.task("bootstrap")


def runs(rig):
    return [json.loads(line) for line in rig["record"].read_text().splitlines()] if rig["record"].exists() else []


def test_bootstraps_once_with_the_token_in_the_environment_only(ansible_cli, rig, api):
    checked, outcome = bootstrap(ansible_cli, rig, check=True)
    assert checked.rc == 0 and outcome["changed"] and outcome["reasons"] == ["flux-system is not installed"]
    assert runs(rig) == [] and api.store.list(next(k for k in KINDS if k.kind == "Secret"), "flux-system") == []

    first, outcome = bootstrap(ansible_cli, rig)
    assert first.rc == 0 and outcome["changed"] and outcome["secret_changed"], first.describe()
    (run,) = runs(rig)
    assert run["token_in_env"] is True and not any(TOKEN in a for a in run["argv"])
    assert run["argv"] == ["bootstrap", "github", "--owner=example-homelab", "--repository=home-gitops", "--personal",
                           "--branch=main", "--path=clusters/home", f"--kubeconfig={rig['kubeconfig']}"]  # fmt: skip
    secret = api.store.get(next(k for k in KINDS if k.kind == "Secret"), "flux-system", "sops-age")
    assert base64.b64decode(secret["data"]["age.agekey"]).decode().strip().endswith(AGE_KEY)

    second, outcome = bootstrap(ansible_cli, rig)
    assert second.rc == 0 and not outcome["changed"] and outcome["reasons"] == [], second.describe()
    assert len(runs(rig)) == 1


def test_a_changed_path_bootstraps_again_naming_why(ansible_cli, rig, api):
    bootstrap(ansible_cli, rig)
    result, outcome = bootstrap(ansible_cli, rig, path="clusters/lab")
    assert result.rc == 0 and outcome["changed"], result.describe()
    assert outcome["reasons"] == ["Kustomization flux-system applies ./clusters/home, not ./clusters/lab"]


def test_a_stale_flux_system_is_bootstrapped_again(ansible_cli, rig, api):
    bootstrap(ansible_cli, rig)
    repo = api.store.get(next(k for k in KINDS if k.kind == "GitRepository"), "flux-system", "flux-system")
    api.store.set_status("GitRepository", "flux-system", "flux-system",
                         ready_status(repo, False, "GitOperationFailed", "failed to checkout"))  # fmt: skip
    result, outcome = bootstrap(ansible_cli, rig)
    assert result.rc == 0 and outcome["changed"] and "GitOperationFailed" in outcome["reasons"][0], result.describe()


def test_without_the_token_nothing_runs(ansible_cli, rig):
    result, outcome = bootstrap(ansible_cli, rig, env={"GITHUB_TOKEN": ""})
    assert result.rc != 0 and "GITHUB_TOKEN" in outcome["msg"] and runs(rig) == []


def test_a_failing_cli_is_reported_with_the_token_masked(ansible_cli, rig):
    result, outcome = bootstrap(ansible_cli, rig, env={"FAKE_FLUX_FAIL": "1"})
    assert result.rc != 0 and "flux bootstrap failed (exit 1)" in outcome["msg"]
    assert any("********" in line for line in outcome["tail"])


@pytest.mark.parametrize("fail", [True, False], ids=["failing", "succeeding"])
def test_the_log_holds_no_token(ansible_cli, rig, tmp_path, fail):
    # the default log, in the cache directory, as a user's run writes it; the fake CLI prints the token either way
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "FAKE_FLUX_ECHO_TOKEN": "1"}
    env["FAKE_FLUX_FAIL"] = "1" if fail else ""
    result, outcome = bootstrap(ansible_cli, rig, env=env)
    assert (result.rc != 0) is fail, result.describe()
    log = tmp_path / "cache" / "nerv-homelab" / "flux_bootstrap.log"
    assert outcome.get("log_file") == str(log) and "connecting to github.com" in log.read_text()
    assert TOKEN not in log.read_text() and "token ********" in log.read_text()
    assert TOKEN not in json.dumps(outcome)


def test_git_provider_needs_a_url(ansible_cli, rig):
    result, outcome = bootstrap(ansible_cli, rig, provider="git")
    assert result.rc != 0 and "url" in outcome["msg"]


def test_a_pinned_release_is_installed_once_and_an_older_one_upgraded(ansible_cli, rig, api):
    bootstrap(ansible_cli, rig)  # no version: the CLI's own release (the fake's is v2.5.1)
    checked, outcome = bootstrap(ansible_cli, rig, check=True, version="v2.6.1")
    assert checked.rc == 0 and outcome["changed"], checked.describe()
    assert outcome["reasons"] == ["Flux v2.5.1 is installed, not v2.6.1"] and len(runs(rig)) == 1

    upgraded, outcome = bootstrap(ansible_cli, rig, version="v2.6.1")
    assert upgraded.rc == 0 and outcome["changed"], upgraded.describe()
    assert runs(rig)[-1]["argv"][-1] == "--version=v2.6.1"
    namespace = api.store.get(next(k for k in KINDS if k.kind == "Namespace"), None, "flux-system")
    assert namespace["metadata"]["labels"]["app.kubernetes.io/version"] == "v2.6.1"

    again, outcome = bootstrap(ansible_cli, rig, version="v2.6.1")
    assert again.rc == 0 and not outcome["changed"] and outcome["reasons"] == [], again.describe()
    assert len(runs(rig)) == 2


@pytest.mark.parametrize("version", ["2.6.1", "v2.6", "v2.6.x", ">=2.6.0"])
def test_a_malformed_release_is_refused_before_anything_runs(ansible_cli, rig, api, version):
    result, outcome = bootstrap(ansible_cli, rig, version=version)
    assert result.rc != 0 and f"version {version!r} is not one Flux release" in outcome["msg"], result.describe()
    assert runs(rig) == [] and api.store.list(next(k for k in KINDS if k.kind == "Secret"), "flux-system") == []
