"""String formats of the site schema, checked against keys made by the real tools (age-keygen, ssh-keygen)."""

import pytest

from ansible_collections.nerv.homelab.plugins.module_utils.site.formats import (
    bech32_decode,
    check_age_recipient,
    check_ipv4_range,
    check_ssh_public_key,
    parse_range,
)

AGE = "age1pya4cp2rnpjdn5cq02flau85thavutn4v4m5z3kcgcucyl7j3ewqsfcd3m"
ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINU9pb4AcSwRvvlx7xnotXk8P/jB2vMcsoOo2WrkuQWN admin1@laptop"


def test_age_recipient_decodes_to_a_32_byte_key():
    hrp, payload = bech32_decode(AGE)
    assert (hrp, len(payload)) == ("age", 32)
    assert check_age_recipient(AGE) is None
    assert check_age_recipient(AGE.upper()) is None


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (AGE[:-1] + "n", "bad checksum"),
        (AGE[:20] + AGE[21:], "bad checksum"),
        (AGE[:10] + AGE[10:].upper(), "mixed case"),
        ("age1", "too short"),
        ("age1qqqqqqqqqqqqqq", "bad checksum"),
        ("age1" + "b" * 60, "outside the Bech32 alphabet"),
    ],
)
def test_malformed_age_recipients(value, fragment):
    assert fragment in check_age_recipient(value)


def test_age_recipient_with_another_prefix_is_refused():
    # A valid Bech32 string of another kind (BIP 173 test vector): checksum fine, not an age key.
    assert check_age_recipient("a12uel5l") == "is not an X25519 age recipient (age1..., 32-byte key)"


def test_ssh_public_key_made_by_ssh_keygen_passes():
    assert check_ssh_public_key(ED25519) is None
    assert check_ssh_public_key(ED25519.rsplit(" ", 1)[0]) is None, "the comment is optional"


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("ssh-ed25519", "TYPE BASE64"),
        ("ssh-dss AAAAB3NzaC1kc3M= x", "key type 'ssh-dss'"),
        ("ssh-ed25519 AAAA@@@@ x", "not valid base64"),
        ("ssh-rsa " + ED25519.split()[1], "does not match its label"),
    ],
)
def test_malformed_ssh_public_keys(value, fragment):
    assert fragment in check_ssh_public_key(value)


@pytest.mark.parametrize(
    ("value", "first", "last"),
    [
        ("10.0.0.10-10.0.0.20", "10.0.0.10", "10.0.0.20"),
        ("10.0.0.10 - 10.0.0.10", "10.0.0.10", "10.0.0.10"),
        ("10.0.0.16/28", "10.0.0.16", "10.0.0.31"),
    ],
)
def test_ranges(value, first, last):
    start, end = parse_range(value)
    assert (str(start), str(end)) == (first, last)


@pytest.mark.parametrize("value", ["10.0.0.20-10.0.0.10", "10.0.0.1/28", "10.0.0.1", "a-b"])
def test_bad_ranges(value):
    assert check_ipv4_range(value).startswith("is not an address range")
