"""The native YAML store against the real sops 3.11, both ways, on a corpus of what YAML secrets files hold.

Files the real sops encrypts are decrypted here (MAC verified), printed as `sops decrypt` prints them, and
rewritten unchanged byte for byte; files written, updated, re-keyed or rotated here are decrypted by the real
`sops decrypt` and accepted by `sops updatekeys`; a value set here is laid out as `sops set` lays it out.
Ciphertexts differ between two encryptions, so layouts are compared with every ENC[...] reduced to its type.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from ansible_collections.nerv.homelab.plugins.module_utils.secrets import age
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.age import SopsError
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops import document as sops
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops import files as sops_files
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops import stores as sops_stores

pyrage = pytest.importorskip("pyrage", reason="pyrage (requirements.txt) is needed for age")

CANARY = "canary-Yaml-Interop-4b1d"
CLEAR_CANARY = "canary-Clear-Comment-77e1"

# Every comment position sops keeps, every scalar type go-yaml gives sops (dates and timestamps are `time`,
# 1e-07 and .inf are floats, yes/on stay strings), quoting that go-yaml must redo, nested and mixed sequences.
CORPUS = f"""\
# a comment at the top
# {CLEAR_CANARY}
name: plain text
password: {CANARY}
quoted_single: 'a: b'
quoted_double: "true"
needs_quotes: "it's: here"
empty:
empty_string: ""
port: 5432
negative: -7
hex: 0x1F
ratio: 3.25
whole: 1.0
tiny: 1e-07
huge: 1.5e+30
million: 1234567.0
up: .inf
down: -.inf
unknown: .nan
yes_word: yes
on_word: on
enabled: true
since: 2024-01-02
at: 2024-01-02T03:04:05Z
at_offset: 2024-01-02T03:04:05.500+02:00
at_space: 2024-01-02 03:04:05
unicode: "héllo wörld ✓"
multi_line: |
    line one
    line two
folded: >
    folded
    text
kept_newlines: |+
    kept

nested:
    # before a nested key
    inner: value
    deeper:
        leaf: 1
        # at the end of deeper
    # at the end of nested
list:
    - a # after an item
    # inside a list
    - b
    # at the end of the list
list_of_maps:
    - name: x
      # inside an item
      val: 1 # after a key of an item
    # between items
    - name: y
      block: |
          in an item
lists_of_lists:
    - - a
      - b
    - - c
empty_map: {{}}
empty_list: []
leading_space: " space"
hash: "a #b"
star: "*ref"
key with spaces: v
"yes": quoted key
long: this is a long unencrypted-looking string with many words that goes well past eighty columns, unwrapped
last: value # a line comment
# a comment at the end
"""

# (name, the .sops.yaml creation rule sops encrypts with, Rules for files written here): all encrypted; most
# values in the clear, so go-yaml's quoting and the MAC over clear floats and dates matter; a MAC over encrypted
# values only.
RULES = [
    ("all-encrypted", "", sops.Rules()),
    ("mostly-clear", "encrypted_regex: ^(password|inner)$", sops.Rules("encrypted_regex", "^(password|inner)$")),
    (
        "mac-only-encrypted",
        "encrypted_regex: ^(password|inner)$\n    mac_only_encrypted: true",
        sops.Rules("encrypted_regex", "^(password|inner)$", mac_only_encrypted=True),
    ),
]
RULE_IDS = [name for name, _rule, _rules in RULES]
_ENC = re.compile(r"ENC\[AES256_GCM,data:[^,]*,iv:[^,]+,tag:[^,]+,type:(\w+)\]")


def normalised(text: str) -> str:
    """The layout of a sops file: ciphertexts reduced to their type, the date, MAC and data-key stanzas left out."""
    body, _sep, meta = text.partition("\nsops:\n")
    keep = [line for line in meta.splitlines() if re.match(r"    (encrypted_regex|unencrypted_suffix|mac_only)", line)]
    return _ENC.sub(r"ENC[\1]", body) + "\nsops:\n" + "\n".join(keep)


def identities(real_sops) -> list:
    return age.load_identities({"SOPS_AGE_KEY_FILE": str(real_sops.key_file)})


def sops_encrypted(real_sops, tmp_path: Path, rule: str, name: str = "secret.yaml", text: str = CORPUS) -> Path:
    """text encrypted by the real sops under a .sops.yaml creation rule (to real_sops' recipient) plus rule."""
    folder = tmp_path / f"by-sops-{name}"
    folder.mkdir()
    (folder / ".sops.yaml").write_text(
        f"creation_rules:\n  - age: {real_sops.recipient}\n" + (f"    {rule}\n" if rule else "")
    )
    path = folder / name
    path.write_text(text)
    real_sops.encrypt_in_place(path)
    assert CANARY not in path.read_text()
    return path


def sops_clear_layout(real_sops, tmp_path: Path, text: str = CORPUS) -> str:
    """The clear text `sops decrypt` prints for text (sops' own encryption of it, decrypted)."""
    return real_sops.decrypt(sops_encrypted(real_sops, tmp_path, "", name="reference.yaml", text=text))


# ---- files sops wrote ------------------------------------------------------------------------------------------


# One defect each, apart from the rest of the corpus: a file sops wrote must open and rewrite unchanged.
DEFECTS = {
    "dates": (
        "since: 2024-01-02\nat: 2024-01-02T03:04:05Z\nwhen_unencrypted: 2024-01-02 03:04:05\n"
        "more_unencrypted: [2024-01-02T03:04:05, 2024-01-02T03:04:05.1234567891Z, 2024-1-2 3:4:5, 2024-02-30]\n"
    ),
    "floats": "tiny: 1e-07\nup: .inf\nclear_unencrypted: [1e-07, .inf, -.inf, .nan, 1234567.0]\n",
    "comments": (
        "# top\na: 1 # after a\nb:\n    # in b\n    c: 2\n    # end of b\nl:\n    - x\n    # in l\n    - y\n# end\n"
    ),
    "layout": (
        "s_unencrypted:\n  - 'a: b'\n  - \"yes\"\n  - ' lead'\n  - - x\n    - y\n  - k: |\n      v\n"
        "  - '2024-01-02'\nq_unencrypted: {x: [1, 2]}\n"
    ),
    # not reported, but found on the way: sops writes an alias out in full, comments included
    "anchors": "base: &b\n    # in base\n    x: 1\nother: *b\nl: &l\n    - 1\n    # c\n    - 2\nm: *l\n",
}


@pytest.mark.parametrize("text", DEFECTS.values(), ids=DEFECTS.keys())
def test_each_reported_defect_alone_a_sops_file_opens_prints_and_rewrites_unchanged(real_sops, tmp_path, text):
    path = sops_encrypted(real_sops, tmp_path, "", text=text)
    original = path.read_text()
    document = sops.Document.parse(original, "yaml")
    plain = document.decrypt(identities(real_sops))
    assert sops_stores.dump(plain, None, "yaml") == real_sops.decrypt(path)
    document.encrypt(plain, touch=False)
    assert document.text() == original


@pytest.mark.parametrize(("_name", "rule", "_rules"), RULES, ids=RULE_IDS)
def test_a_file_sops_encrypted_is_read_and_rewritten_unchanged_byte_for_byte(real_sops, tmp_path, _name, rule, _rules):
    path = sops_encrypted(real_sops, tmp_path, rule)
    original = path.read_text()
    document = sops.Document.parse(original, "yaml")
    plain = document.decrypt(identities(real_sops))
    document.encrypt(plain, touch=False)
    assert document.text() == original


@pytest.mark.parametrize(("_name", "rule", "_rules"), RULES, ids=RULE_IDS)
def test_our_clear_text_is_what_sops_decrypt_prints(real_sops, tmp_path, _name, rule, _rules):
    path = sops_encrypted(real_sops, tmp_path, rule)
    plain = sops.Document.parse(path.read_text(), "yaml").decrypt(identities(real_sops))
    assert sops_stores.dump(plain, None, "yaml") == real_sops.decrypt(path)


def test_dates_floats_and_yes_decrypt_to_what_sops_gives_them(real_sops, tmp_path):
    path = sops_encrypted(real_sops, tmp_path, "")
    text = path.read_text()
    for key in ("since", "at", "at_offset", "at_space"):
        assert re.search(rf"^{key}: ENC\[.*,type:time\]$", text, re.M), f"sops 3.11 types {key} as time"
    plain = sops_files.without_comments(sops_files.decrypt_file(str(path), identities(real_sops)))
    assert plain["since"] == "2024-01-02T00:00:00Z" and plain["at_offset"] == "2024-01-02T03:04:05.5+02:00"
    assert plain["at_space"] == "2024-01-02T03:04:05Z" and isinstance(plain["since"], str)
    assert plain["tiny"] == 1e-07 and plain["up"] == float("inf") and plain["unknown"] != plain["unknown"]
    assert plain["yes_word"] == "yes" and plain["on_word"] == "on" and plain["whole"] == 1.0
    assert plain["password"] == CANARY and plain["list"] == ["a", "b"]


def test_a_changed_clear_float_is_a_mac_mismatch_that_names_no_value(real_sops, tmp_path):
    path = sops_encrypted(real_sops, tmp_path, "encrypted_regex: ^password$")
    sops.Document.parse(path.read_text(), "yaml").decrypt(identities(real_sops))
    tampered = path.read_text().replace("tiny: 1e-07\n", "tiny: 2e-07\n")
    assert tampered != path.read_text()
    with pytest.raises(SopsError, match="MAC mismatch") as caught:
        sops.Document.parse(tampered, "yaml").decrypt(identities(real_sops))
    assert "tiny" not in str(caught.value) and "e-07" not in str(caught.value)


def test_go_yaml_quoting_of_many_strings_is_matched(real_sops, tmp_path):
    """Short strings of YAML's indicator characters, tabs, breaks and unicode, as values and as keys, in the clear."""
    rng = random.Random(7)
    alphabet = [*"ab09 -:#,[]{}&*!|>'\"%@`?.~=\t\n+_eE", "é", "✓", "\u00a0", "\x7f", "\x85"]
    strings = sorted({"".join(rng.choice(alphabet) for _c in range(rng.randint(1, 6))) for _n in range(400)})
    # sops cannot read back its own literal block of a sequence item that starts with a space or a break
    strings = [v for v in strings if not ("\n" in v and v[:1] in " \n")]
    # a key with a line break is a complex key (? ...) to go-yaml, which nerv.homelab does not write
    keys = [k for k in strings if not any(c in k for c in "\n\x85")]
    text = "v_unencrypted:\n" + "".join(f"    - {json.dumps(v)}\n" for v in strings)
    text += "k_unencrypted:\n" + "".join(f"    {json.dumps(k)}: 1\n" for k in keys)
    path = sops_encrypted(real_sops, tmp_path, "", text=text)
    plain = sops.Document.parse(path.read_text(), "yaml").decrypt(identities(real_sops))
    assert plain["v_unencrypted"] == strings
    assert sops_stores.dump(plain, None, "yaml") == real_sops.decrypt(path)


# ---- files we write --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("_name", "_rule", "rules"), RULES, ids=RULE_IDS)
def test_a_file_we_write_is_decrypted_by_sops_and_accepted_by_updatekeys(real_sops, tmp_path, _name, _rule, rules):
    plain, _meta = sops_stores.load(CORPUS, "yaml")
    path = tmp_path / "ours.yaml"
    path.write_text(sops.new_document(plain, "yaml", [real_sops.recipient], rules).text())
    assert CANARY not in path.read_text()
    if rules.kind == "unencrypted_suffix":
        assert CLEAR_CANARY not in path.read_text(), "comments are encrypted, as sops does"
    expected = sops_clear_layout(real_sops, tmp_path)
    assert real_sops.decrypt(path) == expected

    host = pyrage.x25519.Identity.generate()
    (tmp_path / ".sops.yaml").write_text(
        f"creation_rules:\n  - path_regex: .*\n    age: {real_sops.recipient},{host.to_public()}\n"
    )
    real_sops.updatekeys(path, cwd=tmp_path)
    assert str(host.to_public()) in path.read_text()
    host_file = tmp_path / "host.txt"
    host_file.write_text(f"{host}\n")
    assert real_sops.run("decrypt", str(path), env={"SOPS_AGE_KEY_FILE": str(host_file)}).stdout == expected


def test_a_value_we_set_is_laid_out_as_sops_set_lays_it_out(real_sops, tmp_path):
    ours = sops_encrypted(real_sops, tmp_path, "", name="ours.yaml")
    theirs = tmp_path / "theirs.yaml"
    theirs.write_text(ours.read_text())
    changes = {
        ("nested", "inner"): "changed value",
        ("list_of_maps_unencrypted",): "new: clear",
        ("nested", "added"): 12.5,
        ("nested", "flag"): True,
        ("since",): "not a date any more",
    }
    for parts, value in changes.items():
        real_sops.run("set", str(theirs), "".join(f'["{p}"]' for p in parts), _json(value))
    assert not sops_files.plan_values(str(ours), identities(real_sops), {}, []).changed
    for parts, value in changes.items():
        sops_files.plan_values(str(ours), identities(real_sops), {".".join(parts): value}, []).apply()
    assert normalised(ours.read_text()) == normalised(theirs.read_text())
    assert real_sops.decrypt(ours) == real_sops.decrypt(theirs)
    assert real_sops.updatekeys(ours).returncode == 0


def _json(value) -> str:
    return json.dumps(value)


def test_updatekeys_and_rotate_of_a_sops_file_keep_comments_and_open_with_sops(real_sops, tmp_path):
    path = sops_encrypted(real_sops, tmp_path, "")
    expected = real_sops.decrypt(path)
    host = pyrage.x25519.Identity.generate()
    plan = sops_files.plan_updatekeys(str(path), identities(real_sops), [real_sops.recipient, str(host.to_public())])
    assert plan.changed
    plan.apply()
    assert real_sops.decrypt(path) == expected
    before = path.read_text()
    sops_files.plan_rotate(str(path), identities(real_sops)).apply()
    assert path.read_text() != before and real_sops.decrypt(path) == expected
    assert normalised(path.read_text()) == normalised(before)
    # and sops re-keys what we rotated: back to its creation rule's one recipient
    real_sops.updatekeys(path)
    assert str(host.to_public()) not in path.read_text() and real_sops.decrypt(path) == expected


# ---- through Ansible -------------------------------------------------------------------------------------------


def test_sops_file_and_the_lookup_update_and_read_a_file_sops_wrote(real_sops, tmp_path, ansible_cli):
    path = sops_encrypted(real_sops, tmp_path, "")
    before = real_sops.decrypt(path)
    tasks = [
        {"name": "update", "nerv.homelab.sops_file": {"path": str(path), "values": {"nested": {"inner": "updated"}}}},
        {
            "name": "read",
            "ansible.builtin.set_fact": {
                "since": f"{{{{ lookup('nerv.homelab.sops', '{path}', key='since') }}}}",
                "tiny": f"{{{{ lookup('nerv.homelab.sops', '{path}', key='tiny') }}}}",
            },
        },
    ]
    play = [{"name": "sops", "hosts": "localhost", "gather_facts": False, "tasks": tasks}]
    env = {"SOPS_AGE_KEY_FILE": str(real_sops.key_file), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    result = ansible_cli.playbook(play, "-v", env=env)
    assert result.rc == 0, result.describe()
    assert CANARY not in result.output and "AGE-SECRET-KEY" not in result.output
    assert result.task("update")["changed"]
    facts = result.task("read")["ansible_facts"]
    assert facts["since"] == "2024-01-02T00:00:00Z" and float(facts["tiny"]) == 1e-07
    after = real_sops.decrypt(path)
    assert after == before.replace("    inner: value\n", "    inner: updated\n") and after != before
