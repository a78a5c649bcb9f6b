"""common/ssh: the argv to a host, the pinned-key check, and how ssh_run names what went wrong (a fake ssh on PATH
stands in for the host: what it prints is what OpenSSH prints in each case)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from ansible_collections.nerv.homelab.plugins.module_utils.common import errors, ssh

TARGET = ssh.Target("mini1", "10.0.0.50", 2222, "admin", "/keys/id", 3)


def test_the_argv_logs_in_with_keys_only_and_the_pinned_host_key():
    argv = TARGET.ssh("/kh", strict=True)
    assert argv[:2] == ["ssh", "-T"] and argv[-3:] == ["-p", "2222", "admin@10.0.0.50"]
    options = dict(argv[i + 1].split("=", 1) for i, word in enumerate(argv) if word == "-o")
    assert options == {
        "BatchMode": "yes",
        "ConnectTimeout": "3",
        "UserKnownHostsFile": "/kh",
        "GlobalKnownHostsFile": "/dev/null",
        "StrictHostKeyChecking": "yes",
        "LogLevel": "ERROR",
        "IdentitiesOnly": "yes",
    }
    assert "StrictHostKeyChecking=accept-new" in ssh.Target("h", "a").ssh("/kh", strict=False)


def test_a_connect_timeout_below_one_second_is_refused():
    params = {"host": "h", "address": "a", "port": 22, "user": "root", "identity_file": None, "connect_timeout": 0}
    with pytest.raises(errors.HostError, match="^connect_timeout must be at least 1 second, not 0$"):
        ssh.Target.from_params(params)
    assert ssh.Target.from_params({**params, "connect_timeout": 5}, "10.0.0.9").address == "10.0.0.9"


@pytest.fixture
def host_key(tmp_path):
    if shutil.which("ssh-keygen") is None:
        pytest.skip("needs ssh-keygen (Debian package openssh-client): not found on PATH")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "key")], check=True)
    return (tmp_path / "key.pub").read_text().split()[:2]


def test_only_a_pinned_key_for_the_address_and_port_lets_a_strict_login_start(tmp_path, host_key):
    known_hosts = tmp_path / "known_hosts"
    with pytest.raises(errors.Unpinned, match="does not exist: the host's key must be pinned first"):
        ssh.require_pinned(str(known_hosts), TARGET)
    known_hosts.write_text(f"10.0.0.50 {' '.join(host_key)}\n")  # port 22's entry: not the target's port
    with pytest.raises(errors.Unpinned, match=r"^no key of mini1 \(\[10.0.0.50\]:2222\) is pinned in"):
        ssh.require_pinned(str(known_hosts), TARGET)
    known_hosts.write_text(f"[10.0.0.50]:2222 {' '.join(host_key)}\n")
    ssh.require_pinned(str(known_hosts), TARGET)


@pytest.fixture
def fake_ssh(tmp_path, monkeypatch):
    """fake_ssh(script): `ssh` on PATH runs the Python script (argv and stdin as the real one gets them)."""

    def install(script: str):
        path = tmp_path / "bin" / "ssh"
        path.parent.mkdir(exist_ok=True)
        path.write_text(f"#!{sys.executable}\nimport sys, time\n{script}\n")
        path.chmod(0o755)
        monkeypatch.setenv("PATH", f"{path.parent}:/usr/bin:/bin")

    return install


def test_ssh_run_returns_the_commands_output_and_feeds_it_stdin(fake_ssh):
    fake_ssh("print(sys.argv[-1], sys.stdin.read().upper())")
    assert ssh.ssh_run(TARGET, "/kh", ["hostname"], "cannot read", stdin="fed") == "hostname FED\n"


@pytest.mark.parametrize(
    ("stderr", "error", "message"),
    [
        ("ssh: connect to host 10.0.0.50 port 2222: Connection refused", errors.Unreachable,
         "cannot read x on mini1: ssh: connect to host 10.0.0.50 port 2222: Connection refused"),
        ("Host key verification failed.", errors.HostError,
         "cannot read x on mini1: its host key does not match the pinned one in /kh (Host key verification failed.)"),
        ("admin@10.0.0.50: Permission denied (publickey).", errors.HostError,
         "cannot read x on mini1: admin@10.0.0.50: Permission denied (publickey)."),
        ("", errors.HostError, "cannot read x on mini1: ssh exited with 255"),
    ],
)  # fmt: skip
def test_ssh_run_tells_no_answer_from_a_refusal(fake_ssh, stderr, error, message):
    fake_ssh(f"print({stderr!r}, file=sys.stderr) if {stderr!r} else None\nsys.exit(255)")
    with pytest.raises(error) as caught:
        ssh.ssh_run(TARGET, "/kh", ["true"], "cannot read x on mini1")
    assert caught.value.message == message
    assert isinstance(caught.value, errors.Unreachable) == (error is errors.Unreachable)


def test_ssh_run_past_its_timeout_is_a_host_that_did_not_answer(fake_ssh):
    fake_ssh("time.sleep(60)")
    with pytest.raises(errors.Unreachable, match=r"^mini1 at 10.0.0.50:2222 did not answer over SSH within 1 s$"):
        ssh.ssh_run(TARGET, "/kh", ["true"], "cannot read", timeout=1)
