"""The JSON, dotenv, INI and binary stores against the real sops 3.11, both ways.

Files the real sops encrypts are decrypted here (MAC verified), printed as `sops decrypt` prints them, and
rewritten unchanged byte for byte; files written, updated, re-keyed or rotated here are decrypted by the real
`sops decrypt` and accepted by `sops updatekeys`; `sops_file` and the lookup update and read files sops wrote.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ansible_collections.nerv.homelab.plugins.module_utils.secrets import age
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.age import SopsError
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops import document as sops
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops import files as sops_files
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops import stores as sops_stores
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops.text_stores import BinaryText

pyrage = pytest.importorskip("pyrage", reason="pyrage (requirements.txt) is needed for age")

CANARY = "canary-Formats-Interop-9d4f"

# Every kind of JSON number sops reads as a float64 (ints, big ints past 2^53, exponents both sides of Go's
# 1e-6 and 1e21 limits, -0), strings Go escapes (<, >, &, controls, U+2028) and the rest of JSON.
JSON_CORPUS = f"""\
{{
    "password": "{CANARY}",
    "port": 5432,
    "negative": -7,
    "ratio": 1.5,
    "whole": 1.0,
    "big": 12345678901234567890,
    "max_int64": 9223372036854775807,
    "huge": 123456789012345678901234567890,
    "thousand": 1e3,
    "tiny": 1.5E-7,
    "micro": 0.000001,
    "zero": 0,
    "negative_zero": -0.0,
    "html": "<a href='x'>&amp;</a>",
    "controls": "tab\\there\\u0001\\u001f nl\\n cr\\r bs\\b ff\\f",
    "separators": "line\\u2028para\\u2029",
    "unicode": "héllo wörld ✓",
    "enabled": true,
    "disabled": false,
    "nothing": null,
    "empty": "",
    "empty_map": {{}},
    "empty_list": [],
    "list": [1, 2.5, "three", true, null, [4, {{"five": 5}}]],
    "nested": {{"inner": "value", "count": 3, "deeper": {{"leaf": 1e-7}}}},
    "port_unencrypted": 5432,
    "big_unencrypted": 12345678901234567890,
    "tiny_unencrypted": 1.5e-7,
    "huge_unencrypted": 1e21,
    "html_unencrypted": "<&>",
    "negative_zero_unencrypted": -0
}}
"""

DOTENV_CORPUS = f"""\
# a comment
TOKEN={CANARY}
SPACED = around the equals sign{" "}
MULTI=line one\\nline two
EMPTY=
EQUALS=a=b=c
UNICODE=héllo ✓
#another comment
CLEAR_unencrypted=visible
QUOTED="kept quotes"
export EXPORTED=x
"""

# Keys outside a section, comments (both markers, several lines, before a section, inline), every quoting
# ini.v1 reads (double, single, backticks, triple quotes over lines), continuation lines, ':' as delimiter,
# alignment of unicode keys, sections with spaces.
INI_CORPUS = f"""\
; a comment at the top
# and a second line
outside = before any section
another_unencrypted: clear too

; before the first section
[database]
user = admin
password = {CANARY}
port = 5432
ratio = 1.50
enabled = true
; before empty
empty =
quoted = "  padded  "
single = 'single quoted'
hashed = `has # and ; inside`
inline = value ; an inline comment
url = https://example.org/path?q=1
multi = \"\"\"first line
second line\"\"\"
continued = one \\
  two
clé = unicode ✓ wörld
equals = a=b=c
colon_key: colon value

[section with spaces]
key with spaces = value with spaces
  indented = indented key
password_unencrypted = clear-Ini-5c2e
"""

CORPORA = {"json": JSON_CORPUS, "dotenv": DOTENV_CORPUS, "ini": INI_CORPUS}
SUFFIXES = {"json": "json", "dotenv": "env", "ini": "ini"}

# the .sops.yaml rule sops encrypts with, and the Rules for files written here
RULES = [
    ("all-encrypted", "", sops.Rules()),
    (
        "mostly-clear",
        "encrypted_regex: ^(password|TOKEN|inner)$",
        sops.Rules("encrypted_regex", "^(password|TOKEN|inner)$"),
    ),
    (
        "mac-only-encrypted",
        "encrypted_regex: ^(password|TOKEN|inner)$\n    mac_only_encrypted: true",
        sops.Rules("encrypted_regex", "^(password|TOKEN|inner)$", mac_only_encrypted=True),
    ),
]
RULE_IDS = [name for name, _rule, _rules in RULES]

# binary content: bytes that are not UTF-8 (NUL, 0xff, a lone continuation byte), text, and nothing at all
BINARIES = {
    "not-utf8": b"\x00\x01binary \xff\xfe\x80 content\n\xc3(\n",
    "text": f"a text file with {CANARY}\nand a second line\n".encode(),
    "empty": b"",
}


def comparable(text: str, fmt: str) -> str:
    """text, with the lines of an INI file's [sops] section sorted: sops writes them in Go's random map order."""
    if fmt != "ini":
        return text
    body, _sep, meta = text.partition("\n[sops]\n")
    return body + "\n[sops]\n" + "".join(sorted(meta.splitlines(keepends=True)))


def identities(real_sops) -> list:
    return age.load_identities({"SOPS_AGE_KEY_FILE": str(real_sops.key_file)})


def write_rule(folder: Path, recipients: str, rule: str = "") -> None:
    (folder / ".sops.yaml").write_text(f"creation_rules:\n  - age: {recipients}\n" + (f"    {rule}\n" if rule else ""))


def sops_encrypted(real_sops, tmp_path: Path, name: str, content, rule: str = "") -> Path:
    """content (text or bytes) encrypted by the real sops under a .sops.yaml creation rule, in a folder of its own."""
    folder = tmp_path / f"by-sops-{name}"
    folder.mkdir()
    write_rule(folder, real_sops.recipient, rule)
    path = folder / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    real_sops.encrypt_in_place(path)
    assert CANARY.encode() not in path.read_bytes()
    return path


def sops_decrypt_bytes(real_sops, path: Path, env: dict | None = None) -> bytes:
    """What `sops decrypt` writes for path, as bytes (a binary file's content need not be text)."""
    out = path.parent / f"{path.name}.decrypted"
    real_sops.run("decrypt", "--output", str(out), str(path), cwd=path.parent, env=env)
    return out.read_bytes()


def accepts_new_recipient(real_sops, tmp_path: Path, path: Path) -> bytes:
    """`sops updatekeys -y` adds a second recipient to path; what that recipient decrypts, as bytes."""
    host = pyrage.x25519.Identity.generate()
    write_rule(path.parent, f"{real_sops.recipient},{host.to_public()}")
    real_sops.updatekeys(path)
    assert str(host.to_public()) in path.read_text()
    host_file = tmp_path / f"host-{path.name}.txt"
    host_file.write_text(f"{host}\n")
    return sops_decrypt_bytes(real_sops, path, env={"SOPS_AGE_KEY_FILE": str(host_file)})


# ---- files sops wrote ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", CORPORA)
@pytest.mark.parametrize(("_name", "rule", "_rules"), RULES, ids=RULE_IDS)
def test_a_file_sops_encrypted_decrypts_prints_as_sops_and_rewrites_unchanged(
    real_sops, tmp_path, fmt, _name, rule, _rules
):
    path = sops_encrypted(real_sops, tmp_path, f"secret.{SUFFIXES[fmt]}", CORPORA[fmt], rule)
    original = path.read_text()
    assert sops_stores.format_for(path) == fmt
    document = sops.Document.parse(original, fmt)
    plain = document.decrypt(identities(real_sops))
    assert sops_stores.dump(plain, None, fmt) == real_sops.decrypt(path)
    document.encrypt(plain, touch=False)
    assert comparable(document.text(), fmt) == comparable(original, fmt)


def test_json_numbers_decrypt_as_sops_types_them_and_integers_stay_integers(real_sops, tmp_path):
    path = sops_encrypted(real_sops, tmp_path, "numbers.json", JSON_CORPUS)
    text = path.read_text()
    for key in ("port", "negative", "ratio", "big", "tiny"):
        assert re.search(rf'"{key}": "ENC\[.*,type:float\]"', text), (
            f"sops 3.11 types every JSON number as float: {key}"
        )
    plain = sops_files.without_comments(sops_files.decrypt_file(str(path), identities(real_sops)))
    assert plain["port"] == 5432 and isinstance(plain["port"], int) and str(plain["port"]) == "5432"
    assert isinstance(plain["whole"], int) and plain["whole"] == 1
    assert plain["big"] == 12345678901234567000, "a float64, as sops reads it: the digits Go prints"
    assert plain["ratio"] == 1.5 and plain["tiny"] == 1.5e-7 and plain["huge"] == 1.2345678901234568e29
    assert str(plain["negative_zero"]) == "-0.0" and plain["list"][5] == [4, {"five": 5}]


@pytest.mark.parametrize("fmt", ["dotenv", "ini"])
def test_numbers_and_booleans_sops_set_in_a_file_of_strings_read_as_sops_prints_them(real_sops, tmp_path, fmt):
    path = sops_encrypted(real_sops, tmp_path, f"secret.{SUFFIXES[fmt]}", CORPORA[fmt])
    section = '["database"]' if fmt == "ini" else ""
    for key, value in {
        "whole": "5",
        "small": "1e-7",
        "big": "1234567",
        "flag": "true",
        "ratio_unencrypted": "1.5",
    }.items():
        real_sops.run("set", str(path), f'{section}["{key}"]', value)
    assert re.search(r"whole\s*=\s*ENC\[.*,type:float\]", path.read_text()), "sops set stores a JSON number"
    plain = sops_files.decrypt_file(str(path), identities(real_sops))
    assert sops_stores.dump(plain, None, fmt) == real_sops.decrypt(path)
    assert "5.0" in real_sops.decrypt(path) and "1E-07" in real_sops.decrypt(path)
    assert not sops_files.plan_values(str(path), identities(real_sops), {}, []).changed


# sops keeps every section header as a section of its own (an explicit [DEFAULT] too), in file order
INI_SECTIONS = {
    "default-later": ("[s]\na = 1\n[empty]\n[DEFAULT]\nb = 2\n", True),
    # the explicit header is written as keys before any section: same values, same MAC, one line less
    "default-first": ("[DEFAULT]\nb = 2\n[s]\na = 1\n", False),
}


@pytest.mark.parametrize("name", INI_SECTIONS)
def test_ini_sections_sops_wrote_open_in_file_order_and_rewrite_for_sops(real_sops, tmp_path, name):
    text, unchanged = INI_SECTIONS[name]
    path = sops_encrypted(real_sops, tmp_path, f"{name}.ini", text)
    original, expected = path.read_text(), real_sops.decrypt(path)
    document = sops.Document.parse(original, "ini")
    plain = document.decrypt(identities(real_sops))
    assert list(plain) == (["s", "empty", "DEFAULT"] if unchanged else ["DEFAULT", "s"])
    document.encrypt(plain, touch=False)
    path.write_text(document.text())
    assert (comparable(document.text(), "ini") == comparable(original, "ini")) is unchanged
    assert real_sops.decrypt(path) == (expected if unchanged else expected.removeprefix("[DEFAULT]\n"))


def test_an_ini_file_sops_wrote_with_a_repeated_section_is_refused_saying_so(real_sops, tmp_path):
    path = sops_encrypted(real_sops, tmp_path, "repeated.ini", f"[s]\npassword = {CANARY}\n[t]\n[s]\nb = 2\n")
    with pytest.raises(SopsError, match=r"repeats section \[s\]") as caught:
        sops_files.decrypt_file(str(path), identities(real_sops))
    assert CANARY not in str(caught.value)


def test_binary_files_sops_encrypted_decrypt_as_their_bytes_and_rewrite_unchanged(real_sops, tmp_path):
    for name, content in BINARIES.items():
        path = sops_encrypted(real_sops, tmp_path, f"{name}.bin", content)
        original = path.read_text()
        stored = json.loads(original)["data"]
        assert sops_stores.format_for(path) == "binary"
        assert re.fullmatch(r"ENC\[AES256_GCM,.*,type:str\]", stored) if content else stored == "", "as sops stores it"
        document = sops.Document.parse(original, "binary")
        plain = document.decrypt(identities(real_sops))
        data = plain["data"]
        assert (data if isinstance(data, bytes) else data.encode()) == content == sops_decrypt_bytes(real_sops, path)
        document.encrypt(plain, touch=False)
        assert document.text() == original, name


def test_a_binary_file_with_a_substituted_value_is_a_mac_mismatch_that_names_no_value(real_sops, tmp_path):
    path = sops_encrypted(real_sops, tmp_path, "blob.bin", BINARIES["not-utf8"])
    document = sops.Document.parse(path.read_text(), "binary")
    document.decrypt(identities(real_sops))
    # a validly encrypted other value at the same place: only the MAC can tell
    other = sops.encrypt_value(f"swapped {CANARY}", document.data_key, "data:")
    tampered = re.sub(r'"data": "ENC\[[^"]*\]"', f'"data": "{other}"', path.read_text())
    assert tampered != path.read_text()
    with pytest.raises(SopsError, match="MAC mismatch") as caught:
        sops.Document.parse(tampered, "binary").decrypt(identities(real_sops))
    assert CANARY not in str(caught.value) and "swapped" not in str(caught.value) and "binary" not in str(caught.value)


# ---- files we write --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", CORPORA)
@pytest.mark.parametrize(("_name", "rule", "rules"), RULES, ids=RULE_IDS)
def test_a_file_we_write_is_decrypted_by_sops_and_accepted_by_updatekeys(real_sops, tmp_path, fmt, _name, rule, rules):
    expected = real_sops.decrypt(sops_encrypted(real_sops, tmp_path, f"reference.{SUFFIXES[fmt]}", CORPORA[fmt], rule))
    plain, _meta = sops_stores.load(CORPORA[fmt], fmt)
    folder = tmp_path / "ours"
    folder.mkdir()
    path = folder / f"ours.{SUFFIXES[fmt]}"
    path.write_text(sops.new_document(plain, fmt, [real_sops.recipient], rules).text())
    assert CANARY not in path.read_text()
    assert real_sops.decrypt(path) == expected
    assert accepts_new_recipient(real_sops, tmp_path, path).decode() == expected


def test_json_numbers_we_write_are_typed_as_sops_types_them(real_sops, tmp_path):
    theirs = sops_encrypted(real_sops, tmp_path, "theirs.json", JSON_CORPUS)
    plain, _meta = sops_stores.load(JSON_CORPUS, "json")
    ours = sops.new_document({**plain, "set_int": 42, "set_big": 2**64}, "json", [real_sops.recipient], sops.Rules())
    kinds = re.findall(r'"(\w+)": "ENC\[AES256_GCM,[^"]*type:(\w+)\]"', ours.text())
    assert dict(kinds) == {**dict(re.findall(r'"(\w+)": "ENC\[AES256_GCM,[^"]*type:(\w+)\]"', theirs.read_text())),
                           "set_int": "float", "set_big": "float"}  # fmt: skip
    path = tmp_path / "ours.json"
    path.write_text(ours.text())
    decrypted = json.loads(real_sops.decrypt(path))
    assert decrypted["set_int"] == 42 and decrypted["set_big"] == 18446744073709552000


def test_binary_files_we_write_decrypt_with_sops_as_their_bytes_and_pass_updatekeys(real_sops, tmp_path):
    for name, content in BINARIES.items():
        data = content.decode() if name != "not-utf8" else BinaryText(content)
        folder = tmp_path / f"ours-{name}"
        folder.mkdir()
        path = folder / f"{name}.bin"
        path.write_text(sops.new_document({"data": data}, "binary", [real_sops.recipient], sops.Rules()).text())
        assert sops_decrypt_bytes(real_sops, path) == content, name
        assert accepts_new_recipient(real_sops, tmp_path, path) == content, name


@pytest.mark.parametrize("fmt", [*CORPORA, "binary"])
def test_updatekeys_and_rotate_here_of_a_file_sops_wrote_open_with_sops(real_sops, tmp_path, fmt):
    content = BINARIES["not-utf8"] if fmt == "binary" else CORPORA[fmt]
    path = sops_encrypted(real_sops, tmp_path, f"secret.{SUFFIXES.get(fmt, 'bin')}", content)
    expected = sops_decrypt_bytes(real_sops, path)
    host = pyrage.x25519.Identity.generate()
    plan = sops_files.plan_updatekeys(str(path), identities(real_sops), [real_sops.recipient, str(host.to_public())])
    assert plan.changed
    plan.apply()
    host_file = tmp_path / "host.txt"
    host_file.write_text(f"{host}\n")
    assert sops_decrypt_bytes(real_sops, path, env={"SOPS_AGE_KEY_FILE": str(host_file)}) == expected
    before = path.read_text()
    sops_files.plan_rotate(str(path), identities(real_sops)).apply()
    assert path.read_text() != before and sops_decrypt_bytes(real_sops, path) == expected
    # and sops re-keys what we rotated: back to its creation rule's one recipient
    real_sops.updatekeys(path)
    assert str(host.to_public()) not in path.read_text() and sops_decrypt_bytes(real_sops, path) == expected


@pytest.mark.parametrize(
    ("fmt", "key", "value", "line"),
    [
        ("json", "nested.count", 4, '\t\t"count": 4,\n'),
        ("dotenv", "SPACED ", "changed", "SPACED =changed\n"),
        ("dotenv", "FLAG_unencrypted", True, "FLAG_unencrypted=true\n"),
        ("ini", "section with spaces.flag_unencrypted", False, "flag_unencrypted     = false\n"),
        ("ini", "database.port", 5433, "port      = 5433\n"),
    ],
)
def test_a_value_we_set_in_a_file_sops_wrote_decrypts_with_sops(real_sops, tmp_path, fmt, key, value, line):
    path = sops_encrypted(real_sops, tmp_path, f"secret.{SUFFIXES[fmt]}", CORPORA[fmt])
    before = real_sops.decrypt(path)
    assert not sops_files.plan_values(str(path), identities(real_sops), {}, []).changed
    sops_files.plan_values(str(path), identities(real_sops), {key: value}, []).apply()
    after = real_sops.decrypt(path)
    assert line in after and line not in before
    assert [a for a in after.splitlines() if a not in before.splitlines()] == [line.rstrip("\n")]
    assert real_sops.updatekeys(path).returncode == 0


# ---- through Ansible -------------------------------------------------------------------------------------------


def test_sops_file_and_the_lookup_update_and_read_files_sops_wrote(real_sops, tmp_path, ansible_cli):
    paths = {fmt: sops_encrypted(real_sops, tmp_path, f"secret.{SUFFIXES[fmt]}", text) for fmt, text in CORPORA.items()}
    paths["binary"] = sops_encrypted(real_sops, tmp_path, "blob.bin", BINARIES["text"])
    updates = {
        "json": {"nested": {"inner": "updated"}, "port": 6543},
        "dotenv": {"TOKEN": "updated"},
        "ini": {"database": {"password": "updated", "port": 6543}},
        "binary": {"data": "updated content\n"},
    }
    tasks = [
        {"name": f"update {fmt}", "nerv.homelab.sops_file": {"path": str(paths[fmt]), "values": values}}
        for fmt, values in updates.items()
    ]
    lookups = {
        "json_port": ("json", "port"),
        "json_negative": ("json", "negative"),
        "json_big": ("json", "big"),
        "json_ratio": ("json", "ratio"),
        "dotenv_token": ("dotenv", "TOKEN"),
        "ini_port": ("ini", "database.port"),
        "ini_outside": ("ini", "DEFAULT.outside"),
        "binary_data": ("binary", "data"),
    }
    facts = {
        name: f"{{{{ lookup('nerv.homelab.sops', '{paths[fmt]}', key='{key}') }}}}"
        for name, (fmt, key) in lookups.items()
    }
    tasks.append({"name": "read", "ansible.builtin.set_fact": facts})
    raw = sops_encrypted(real_sops, tmp_path, "raw.bin", BINARIES["not-utf8"])
    copied = tmp_path / "copied.bin"
    content = f"{{{{ lookup('nerv.homelab.sops', '{raw}', key='data', base64=true) | b64decode }}}}"
    tasks.append({"name": "copy bytes", "ansible.builtin.copy": {"content": content, "dest": str(copied)}})
    tasks.append(
        {
            "name": "render",
            "ansible.builtin.debug": {"msg": "port {{ json_port }} negative {{ json_negative }} big {{ json_big }}"},
        }
    )
    play = [{"name": "sops", "hosts": "localhost", "gather_facts": False, "tasks": tasks}]
    env = {"SOPS_AGE_KEY_FILE": str(real_sops.key_file), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    result = ansible_cli.playbook(play, "-v", env=env)
    assert result.rc == 0, result.describe()
    assert CANARY not in result.output and "AGE-SECRET-KEY" not in result.output
    assert all(result.task(f"update {fmt}")["changed"] for fmt in updates)
    read = result.task("read")["ansible_facts"]
    assert read["json_port"] == 6543 and read["json_big"] == 12345678901234567000 and read["json_ratio"] == 1.5
    assert (
        read["dotenv_token"] == "updated" and read["ini_port"] == "6543" and read["ini_outside"] == "before any section"
    )
    assert read["binary_data"] == "updated content\n"
    assert result.task("render")["msg"] == "port 6543 negative -7 big 12345678901234567000"
    assert '"port": 6543,' in real_sops.decrypt(paths["json"]) and '"inner": "updated"' in real_sops.decrypt(
        paths["json"]
    )
    assert "TOKEN=updated\n" in real_sops.decrypt(paths["dotenv"])
    assert "password  = updated\nport      = 6543\n" in real_sops.decrypt(paths["ini"])
    assert sops_decrypt_bytes(real_sops, paths["binary"]) == b"updated content\n"
    assert copied.read_bytes() == BINARIES["not-utf8"], "content that is not UTF-8 comes through base64 unchanged"


def test_the_format_option_reads_and_writes_a_store_its_name_does_not_say(real_sops, tmp_path, ansible_cli):
    folder = tmp_path / "named"
    folder.mkdir()
    write_rule(folder, real_sops.recipient, "")
    path = folder / "app.conf"
    path.write_text(f"[database]\npassword = {CANARY}\n")
    real_sops.encrypt_in_place(path, "--input-type", "ini", "--output-type", "ini")
    options = {"path": str(path), "format": "ini", "values": {"database": {"user": "app"}}}
    fact = f"{{{{ lookup('nerv.homelab.sops', '{path}', key='database.password', format='ini') }}}}"
    tasks = [
        {"name": "update", "nerv.homelab.sops_file": options},
        {"name": "again", "nerv.homelab.sops_file": options},
        {"name": "read", "ansible.builtin.set_fact": {"password": fact}},
        {"name": "show", "ansible.builtin.assert": {"that": [f"password == '{CANARY}'"], "quiet": True}},
    ]
    play = [{"name": "sops", "hosts": "localhost", "gather_facts": False, "tasks": tasks}]
    env = {"SOPS_AGE_KEY_FILE": str(real_sops.key_file), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    result = ansible_cli.playbook(play, env=env)
    assert result.rc == 0, result.describe()
    assert result.task("update")["changed"] and not result.task("again")["changed"]
    clear = real_sops.decrypt(path, "--input-type", "ini", "--output-type", "ini")
    assert f"password = {CANARY}\n" in clear and "user     = app\n" in clear, clear
    assert CANARY not in result.output
