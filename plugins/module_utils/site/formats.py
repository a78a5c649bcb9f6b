# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checks for the string formats the site schema names (``format``): each returns None or a problem text."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import posixpath
import re
import struct

from ansible_collections.nerv.homelab.plugins.module_utils.common.names import is_dns_label

_BECH32_ALPHABET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_BECH32_GEN = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
SSH_KEY_TYPES = (
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
)


def check_ipv4(value: str) -> str | None:
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        return "is not an IPv4 address"
    return None


def check_ipv4_network(value: str) -> str | None:
    if "/" not in value:
        return "has no /prefix"
    try:
        ipaddress.IPv4Network(value, strict=True)
    except ValueError as exc:
        return f"is not an IPv4 network ({exc})"
    return None


def check_ipv4_interface(value: str) -> str | None:
    if "/" not in value:
        return "has no /prefix"
    try:
        ipaddress.IPv4Interface(value)
    except ValueError:
        return "is not an IPv4 address with a prefix"
    return None


def check_ipv4_or_hostname(value: str) -> str | None:
    """An IPv4 address or a DNS name; digits and dots alone must be a valid address (192.168.1.300 is neither)."""
    if re.fullmatch(r"[0-9.]+", value):
        return check_ipv4(value)
    labels = value[:-1].split(".") if value.endswith(".") else value.split(".")
    if len(value) > 253 or not all(is_dns_label(label.lower()) for label in labels):
        return "is neither an IPv4 address nor a DNS name"
    return None


def parse_range(value: str) -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]:
    """FIRST-LAST or a CIDR as (first, last) addresses; ValueError when it is neither."""
    if "/" in value:
        net = ipaddress.IPv4Network(value, strict=True)
        return net.network_address, net.broadcast_address
    first, sep, last = value.partition("-")
    if not sep:
        raise ValueError("neither FIRST-LAST nor a CIDR")
    start, end = ipaddress.IPv4Address(first.strip()), ipaddress.IPv4Address(last.strip())
    if start > end:
        raise ValueError("first address is after the last")
    return start, end


def check_ipv4_range(value: str) -> str | None:
    try:
        parse_range(value)
    except ValueError as exc:
        return f"is not an address range ({exc})"
    return None


def _bech32_polymod(hrp: str, values: list[int]) -> int:
    """BIP 173's checksum function over the human-readable part (expanded) and the data values."""
    chk = 1
    for value in [ord(ch) >> 5 for ch in hrp] + [0] + [ord(ch) & 31 for ch in hrp] + values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ value
        for i, gen in enumerate(_BECH32_GEN):
            chk ^= gen if (top >> i) & 1 else 0
    return chk


def bech32_decode(text: str) -> tuple[str, bytes]:
    """Decode a Bech32 string (BIP 173 checksum) into (hrp, payload bytes); ValueError when malformed."""
    if text.lower() != text and text.upper() != text:
        raise ValueError("mixed case")
    text = text.lower()
    hrp, sep, data = text.rpartition("1")
    if not sep or not hrp or len(data) < 6:
        raise ValueError("no separator or too short")
    if any(ch not in _BECH32_ALPHABET for ch in data):
        raise ValueError("character outside the Bech32 alphabet")
    values = [_BECH32_ALPHABET.index(ch) for ch in data]
    if _bech32_polymod(hrp, values) != 1:
        raise ValueError("bad checksum")
    return hrp, bytes(_convert_bits(values[:-6], 5, 8, pad=False))


def bech32_encode(hrp: str, payload: bytes) -> str:
    """Encode payload bytes as Bech32 (BIP 173 checksum) under hrp, lower case."""
    values = _convert_bits(payload, 8, 5, pad=True)
    polymod = _bech32_polymod(hrp, values + [0] * 6) ^ 1
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(_BECH32_ALPHABET[v] for v in values + checksum)


def _convert_bits(values, source: int, target: int, pad: bool) -> list[int]:
    """Regroup a sequence of source-bit values into target-bit values (BIP 173 convertbits)."""
    acc, bits, out = 0, 0, []
    for value in values:
        acc = (acc << source) | value
        bits += source
        while bits >= target:
            bits -= target
            out.append((acc >> bits) & ((1 << target) - 1))
    if pad and bits:
        out.append((acc << (target - bits)) & ((1 << target) - 1))
    elif not pad and (bits >= source or (acc & ((1 << bits) - 1))):
        raise ValueError("bad padding")
    return out


def check_age_recipient(value: str) -> str | None:
    try:
        hrp, payload = bech32_decode(value)
    except ValueError as exc:
        return f"is not an age recipient ({exc})"
    if hrp != "age" or len(payload) != 32:
        return "is not an X25519 age recipient (age1..., 32-byte key)"
    return None


def check_ssh_public_key(value: str) -> str | None:
    # authorized_keys takes one key per line: a line break here would let a second key in unseen
    if re.search(r"[\x00-\x08\x0a-\x1f\x7f]", value):
        return "holds a line break or control character; give each key its own item"
    parts = value.split()
    if len(parts) < 2:
        return "is not an SSH public key line (TYPE BASE64 [comment])"
    if parts[0] not in SSH_KEY_TYPES:
        return "has key type {!r}, expected one of {}".format(parts[0][:40], ", ".join(SSH_KEY_TYPES))
    try:
        blob = base64.b64decode(parts[1], validate=True)
        (length,) = struct.unpack(">I", blob[:4])
        inner = blob[4 : 4 + length].decode("ascii")
    except (binascii.Error, struct.error, UnicodeDecodeError):
        return "has a key body that is not valid base64 SSH key data"
    if inner != parts[0]:
        return f"has a key body of type {inner[:40]!r} that does not match its label {parts[0]!r}"
    return None


def check_mac_address(value: str) -> str | None:
    """A NIC's own (unicast) address; the schema pattern has checked the six hex pairs."""
    octets = bytes.fromhex(value.replace(":", ""))
    if octets == b"\xff" * 6:
        return "is the broadcast address, not the address of a NIC"
    if octets[0] & 1:
        return "is a multicast address (the first byte is odd), not the address of a NIC"
    if octets == bytes(6):
        return "is all zeros, not the address of a NIC"
    return None


def check_relative_path(value: str) -> str | None:
    """A path relative to a directory it must stay inside: not absolute and no '..' that climbs out of it."""
    if value.startswith(("/", "~")):
        return "is an absolute path: it must be relative to its directory"
    if re.search(r"[\x00-\x1f\x7f]", value):
        return "holds a line break or control character"
    if posixpath.normpath(value).split("/")[0] == "..":
        return "leads out of its directory through '..'"
    return None


FORMATS = {
    "ipv4": check_ipv4,
    "ipv4-network": check_ipv4_network,
    "ipv4-interface": check_ipv4_interface,
    "ipv4-range": check_ipv4_range,
    "ipv4-or-hostname": check_ipv4_or_hostname,
    "age-recipient": check_age_recipient,
    "ssh-public-key": check_ssh_public_key,
    "mac-address": check_mac_address,
    "relative-path": check_relative_path,
}
