"""common/known_hosts.py: keys pinned by address, and pinning many at once in one write."""

from __future__ import annotations

import threading

import pytest

from ansible_collections.nerv.homelab.plugins.module_utils.common import known_hosts

A = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAAA"
B = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBBBB"
RSA = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ"


def test_pinned_keys_by_address_ports_and_names_plain_entries_only(tmp_path):
    path = tmp_path / "known_hosts"
    path.write_text(f"# comment\n10.0.0.1 {A}\n[10.0.0.2]:2222 {B}\n10.0.0.3,h3 {A} root@h3\n|1|hashed= {B}\n"
                    f"10.0.0.4 {RSA}\n@cert-authority * {A}\n")  # fmt: skip
    assert known_hosts.pinned_keys(str(path)) == {"10.0.0.1": A, "10.0.0.2": B, "10.0.0.3": A, "h3": A}
    assert known_hosts.pinned_keys(str(tmp_path / "missing")) == {} and known_hosts.pinned_keys(None) == {}


@pytest.mark.parametrize(
    ("before", "keys", "after", "changed"),
    [
        ("", {"10.0.0.1": A}, [f"10.0.0.1 {A}"], ["10.0.0.1"]),
        (f"10.0.0.1 {A}\n", {"10.0.0.1": A + " root@cp1"}, [f"10.0.0.1 {A}"], []),
        (f"10.0.0.1 {A}\n10.0.0.9 {B}\n", {"10.0.0.1": B}, [f"10.0.0.9 {B}", f"10.0.0.1 {B}"], ["10.0.0.1"]),
        (f"10.0.0.1,cp1 {A}\n", {"10.0.0.1": B}, [f"cp1 {A}", f"10.0.0.1 {B}"], ["10.0.0.1"]),
        (f"10.0.0.1 {RSA}\n", {"10.0.0.1": A}, [f"10.0.0.1 {RSA}", f"10.0.0.1 {A}"], ["10.0.0.1"]),
        (f"10.0.0.1 {A}\n10.0.0.1 {A}\n", {"10.0.0.1": A}, [f"10.0.0.1 {A}"], ["10.0.0.1"]),
    ],
    ids=["new", "same-key-kept", "other-key-replaced", "shared-line-split", "other-type-kept", "duplicate-dropped"],
)
def test_pin_replaces_only_the_addresses_key_and_says_which_changed(tmp_path, before, keys, after, changed):
    path = tmp_path / "known_hosts"
    if before:
        path.write_text(before)
    assert known_hosts.pin(str(path), keys) == changed
    assert path.read_text().splitlines() == after
    assert known_hosts.pin(str(path), keys) == [], "pinning the same keys again changes nothing"


def test_check_mode_says_what_would_change_and_writes_nothing(tmp_path):
    path = tmp_path / "site" / "known_hosts"
    assert known_hosts.pin(str(path), {"10.0.0.1": A, "10.0.0.2": B}, check_mode=True) == ["10.0.0.1", "10.0.0.2"]
    assert not path.exists()


def test_parallel_writers_lose_no_entry(tmp_path):
    """The VMs' jobs pin into one file at once: the directory lock keeps every entry."""
    path = str(tmp_path / "known_hosts")
    keys = [{f"10.0.1.{i}": f"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{i:04d}"} for i in range(24)]
    workers = [threading.Thread(target=known_hosts.pin, args=(path, k)) for k in keys]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len(known_hosts.pinned_keys(path)) == 24
