"""The sops lookup's base64 option, through ansible-playbook, on binary files the real sops encrypted.

Ansible cannot template or serialise bytes, so content that is not UTF-8 fails the lookup naming base64 (never the
content), base64=true gives the base64 of the exact bytes, and a binary file that is UTF-8 text stays text.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

pytest.importorskip("pyrage", reason="pyrage (requirements.txt) is needed for age")

MARKER = "canary-Lookup-Base64-5b7e"
# not UTF-8 (NUL, 0xff, a lone continuation byte) around an ASCII marker that output must never show
NOT_UTF8 = b"\x00\xff\xfe" + MARKER.encode() + b"\x80\xc3(\n"
UTF8 = f"text ü with {MARKER}\n".encode()
DATA = "'data'"  # the key of a binary file's content, as a Jinja literal


def binary_by_sops(real_sops, tmp_path: Path, name: str, content: bytes) -> Path:
    """content encrypted by the real sops as a binary file for this identity (no .sops.yaml involved)."""
    plain, path = tmp_path / f"{name}.plain", tmp_path / name
    plain.write_bytes(content)
    real_sops.run("encrypt", "--input-type", "binary", "--output-type", "binary", "--age", real_sops.recipient,
                  "--output", str(path), str(plain), cwd=tmp_path)  # fmt: skip
    plain.unlink()
    assert MARKER.encode() not in path.read_bytes()
    return path


def template(path: Path, then: str = "", **options: str) -> str:
    """{{ lookup('nerv.homelab.sops', path, name=value...) then }}: values are Jinja literals."""
    args = "".join(f", {name}={value}" for name, value in options.items())
    return f"{{{{ lookup('nerv.homelab.sops', '{path}'{args}){then} }}}}"


def run(ansible_cli, real_sops, tasks: list, *args: str):
    play = [{"name": "sops base64", "hosts": "localhost", "gather_facts": False, "tasks": tasks}]
    env = {"SOPS_AGE_KEY_FILE": str(real_sops.key_file), "XDG_CONFIG_HOME": str(real_sops.home / ".config")}
    return ansible_cli.playbook(play, *args, env=env)


@pytest.mark.parametrize("key", [None, DATA], ids=["content", "key-data"])
def test_content_that_is_not_utf8_fails_by_default_naming_base64_never_the_content(
    real_sops, tmp_path, ansible_cli, key
):
    path = binary_by_sops(real_sops, tmp_path, "blob.bin", NOT_UTF8)
    options = {"key": key} if key else {}
    task = {"name": "read", "ansible.builtin.debug": {"msg": template(path, **options)}}
    result = run(ansible_cli, real_sops, [task], "-vvv")
    assert result.rc != 0, result.describe()
    failure = result.task("read")
    assert failure.get("failed"), result.describe()
    assert "base64=true" in failure["msg"] and "blob.bin" in failure["msg"] and "not UTF-8" in failure["msg"]
    assert MARKER not in result.output and MARKER not in str(failure)
    assert base64.b64encode(NOT_UTF8).decode() not in result.output


def test_base64_returns_the_exact_bytes_and_templates_to_json(real_sops, tmp_path, ansible_cli):
    path = binary_by_sops(real_sops, tmp_path, "blob.bin", NOT_UTF8)
    facts = {
        "whole": template(path, base64="true"),
        "data": template(path, key=DATA, base64="true"),
        "as_json": template(path, " | to_json", base64="true"),
    }
    result = run(ansible_cli, real_sops, [{"name": "read", "ansible.builtin.set_fact": facts}])
    assert result.rc == 0, result.describe()
    read = result.task("read")["ansible_facts"]
    expected = base64.b64encode(NOT_UTF8).decode()
    assert read["whole"] == expected and read["data"] == expected
    assert read["as_json"] == f'"{expected}"'
    assert base64.b64decode(read["whole"]) == NOT_UTF8
    assert MARKER not in result.output


def test_a_binary_file_that_is_utf8_is_text(real_sops, tmp_path, ansible_cli):
    path = binary_by_sops(real_sops, tmp_path, "note.bin", UTF8)
    facts = {
        "data": template(path, key=DATA),
        "as_json": template(path, " | to_json", key=DATA),
        "whole": template(path, " | to_json"),
        "is_string": template(path, " is string", key=DATA),
    }
    result = run(ansible_cli, real_sops, [{"name": "read", "ansible.builtin.set_fact": facts}])
    assert result.rc == 0, result.describe()
    read = result.task("read")["ansible_facts"]
    text = UTF8.decode()
    assert read["data"] == text and read["is_string"] is True
    assert read["as_json"] == f'"text \\u00fc with {MARKER}\\n"'
    assert read["whole"] == '{"data": "text \\u00fc with ' + MARKER + '\\n"}'
