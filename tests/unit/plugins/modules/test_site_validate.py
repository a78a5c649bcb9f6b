"""The module's pure entry point: parameters in, result dict out."""

from pathlib import Path

import pytest
import yaml

from ansible_collections.nerv.homelab.plugins.module_utils.site.model import SiteError
from ansible_collections.nerv.homelab.plugins.modules.site_validate import run

DEMO = Path(__file__).resolve().parents[4] / "inventory" / "demo" / "site.yml"


def test_path_gives_site_plan_and_no_change():
    result = run({"path": str(DEMO), "site": None})
    assert result["changed"] is False
    assert result["problems"] == []
    assert result["site"]["site"]["name"] == "demo"
    assert "_warnings" not in result["site"]
    assert result["plan"][0]["phase"] == "validate"


def test_inline_site_with_problem_raises_site_error():
    with pytest.raises(SiteError) as caught:
        run({"path": None, "site": {"site": {"name": "x"}}})
    assert "network: is required but missing" in str(caught.value)


def test_a_site_read_from_its_file_has_its_values_sops_files_checked(tmp_path):
    data = yaml.safe_load(DEMO.read_text())
    data["apps"] = [{"name": "web", "repository": "https://charts.example", "chart": "web", "version": "1.0.0",
                     "values_sops": "web.sops.yaml"}]  # fmt: skip
    site_file = tmp_path / "site.yml"
    site_file.write_text(yaml.safe_dump(data))
    with pytest.raises(SiteError, match=r"apps\[0\]\.values_sops: web\.sops\.yaml does not exist"):
        run({"path": str(site_file), "site": None})
    assert run({"path": None, "site": data})["site"]["apps"][0]["namespace"] == "web", "inline: no file to look for"
    (tmp_path / "web.sops.yaml").write_text("x: 1\n")
    assert run({"path": str(site_file), "site": None})["problems"] == []
