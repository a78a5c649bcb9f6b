"""The module's pure entry point: parameters in, result dict out."""

from pathlib import Path

import pytest

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
