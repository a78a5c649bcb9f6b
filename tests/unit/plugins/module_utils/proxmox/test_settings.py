"""How to reach a Proxmox API: the settings' checks, and settings from a site file or module options."""

from __future__ import annotations

import pytest

from ansible_collections.nerv.homelab.plugins.module_utils.proxmox.settings import (
    ProxmoxError,
    ProxmoxSettings,
    settings_from_params,
    settings_from_site,
)

SECRET = "3f0b8e61-canary-secret"


def settings(**changes):
    values = dict(url="https://pve1.lab.example:8006", token_id="automation@pve!nerv", token_secret=SECRET)
    values.update(changes)
    return ProxmoxSettings(**values)


def test_good_settings_pass_and_hide_their_secrets():
    good = settings().check()
    assert SECRET not in repr(good)
    assert good.endpoint() == ("pve1.lab.example", 8006)
    assert settings(url="https://[fd00::2]:9443").endpoint() == ("[fd00::2]", 9443)
    assert settings(url="https://pve1").endpoint() == ("pve1", 8006)
    assert settings(user="root@pam", password="pw", token_id=None, token_secret=None).check().uses_token is False


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"url": ""}, "url is required"),
        ({"url": "http://pve1:8006"}, "https://"),
        ({"url": "https://"}, "https://"),
        ({"url": "https://pve1:99999"}, "https://"),
        ({"url": "https://pve1:8006/somewhere"}, "has a path"),
        ({"token_id": "automation@pve"}, "USER@REALM!TOKENID"),
        ({"token_secret": None}, "PROXMOX_TOKEN_SECRET"),
        ({"token_id": None, "token_secret": None}, "no credentials"),
        ({"token_id": None, "user": "root"}, "USER@REALM"),
        ({"token_id": None, "user": "root@pam"}, "PROXMOX_PASSWORD"),
        ({"ca_path": "/nonexistent/ca.pem"}, "ca_path"),
        ({"timeout": 0}, "timeout"),
        ({"retries": -1}, "retries"),
    ],
)
def test_bad_settings_name_the_field_and_the_fix(changes, needle):
    with pytest.raises(ProxmoxError) as caught:
        settings(**changes).check()
    assert needle in caught.value.message
    assert SECRET not in caught.value.message


def test_verify_is_the_ca_bundle_when_given(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    assert settings().verify is True
    assert settings(ca_path=str(ca)).verify == str(ca)
    assert settings(ca_path=str(ca), validate_certs=False).verify is False


SITE = {"proxmox": {"url": "https://pve1:8006", "token_id": "a@pve!b", "token_secret_env": "MY_SECRET"}}


def test_settings_from_site_read_the_secret_from_the_named_variable():
    got = settings_from_site(SITE, environ={"MY_SECRET": SECRET})
    assert (got.url, got.token_id, got.token_secret) == ("https://pve1:8006", "a@pve!b", SECRET)
    assert got.validate_certs is True
    other = settings_from_site(SITE, environ={"MY_SECRET": SECRET}, url="https://other", ca_path=None)
    assert other.url == "https://other"


def test_settings_from_site_read_the_secret_from_the_sops_file_when_the_variable_is_unset():
    sops = {"proxmox": {**SITE["proxmox"], "token_secret_sops": {"file": "secrets/pve.sops.yaml", "key": "a.b"}}}
    asked = []

    def read_secret(file, key):
        asked.append((file, key))
        return SECRET

    assert settings_from_site(sops, environ={}, read_secret=read_secret).token_secret == SECRET
    assert asked == [("secrets/pve.sops.yaml", "a.b")]
    assert settings_from_site(sops, environ={"MY_SECRET": "env"}, read_secret=read_secret).token_secret == "env"
    assert len(asked) == 1, "the variable wins, and the file is not read then"


def test_settings_from_site_name_the_missing_variable():
    with pytest.raises(ProxmoxError, match="set MY_SECRET"):
        settings_from_site(SITE, environ={})
    sops = {"proxmox": {**SITE["proxmox"], "token_secret_sops": {"file": "s.yaml", "key": "k"}}}
    with pytest.raises(ProxmoxError, match=r"set MY_SECRET, or sops-encrypt it into s.yaml \(key k\)"):
        settings_from_site(sops, environ={})
    with pytest.raises(ProxmoxError, match="no proxmox section"):
        settings_from_site({"hosts": []}, environ={})


def test_settings_from_params_leave_out_what_was_not_given():
    got = settings_from_params({"url": "https://pve1", "token_id": "a@pve!b", "token_secret": SECRET, "user": None})
    assert (got.url, got.token_id, got.user, got.timeout, got.retries) == ("https://pve1", "a@pve!b", None, 30, 4)
    with pytest.raises(ProxmoxError, match="url is required"):
        settings_from_params({"url": None, "token_id": "a@pve!b", "token_secret": SECRET, "vmid": 101}).check()
