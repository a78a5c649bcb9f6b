"""sops_file's values option as key paths: top-level keys are key paths, nested keys are names as they are."""

from __future__ import annotations

import base64

import pytest

from ansible_collections.nerv.homelab.plugins.module_utils.secrets import age
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops import config, files, text_stores
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops.document import Rules, new_document

pyrage = pytest.importorskip("pyrage", reason="pyrage (requirements.txt) is needed for age")


@pytest.mark.parametrize(
    ("values", "flat"),
    [
        ({"a.b": 1}, {("a", "b"): 1}),
        ({'["a.b"]': 1}, {("a.b",): 1}),
        ({"a": {"b.c": 1, "d": {"e": 2}}}, {("a", "b.c"): 1, ("a", "d", "e"): 2}),
        ({'["a.b"]': {"c": 1}}, {("a.b", "c"): 1}),
        ({"a": {}}, {("a",): {}}),
    ],
)
def test_values_flatten_to_key_paths(values, flat):
    assert files.flatten_values(values) == flat


def test_key_paths_of_a_tree_say_which_names_hold_a_dot():
    tree = {"a.b": 1, "a": {"b": 2, "c.d": 3}}
    assert files.key_paths(tree) == ['["a.b"]', "a.b", '["a"]["c.d"]']


def _identity():
    key = pyrage.x25519.Identity.generate()
    return age.Identity(key, "test", str(key.to_public()))


def _encrypted(path, recipients):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new_document({"v": "canary"}, "yaml", recipients, Rules()).text())
    return path.read_bytes()


def test_sops_files_are_found_by_name_and_hidden_ones_left_out(tmp_path):
    for name in ("a/x.sops.yaml", "a/b/y.sops.json", "a/plain.yaml", "a/.nerv-tmp.sops.yaml", "a/.git/z.sops.yaml"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("{}")
    found = files.sops_files([str(tmp_path / "a"), str(tmp_path / "a" / "x.sops.yaml")])
    assert found == [str(tmp_path / "a" / "b" / "y.sops.json"), str(tmp_path / "a" / "x.sops.yaml")]


def test_only_files_whose_rule_names_other_recipients_are_rekeyed(tmp_path):
    admin, host = _identity(), _identity()
    rules = config.site_rules([admin.public], [{"name": "h", "recipient": host.public}], [], "secrets", [])
    stale = tmp_path / "secrets" / "h" / "app.sops.yaml"
    _encrypted(stale, [admin.public])
    current = tmp_path / "secrets" / "notes.sops.yaml"
    kept = _encrypted(current, [admin.public])
    loaded = []

    def load():
        loaded.append(1)
        return [admin]

    plans = files.plan_rekeys([str(tmp_path / "secrets")], rules, str(tmp_path / ".sops.yaml"), load)
    assert [p.path for p in plans] == [str(stale)] and loaded == [1]
    assert plans[0].after_recipients == [admin.public, host.public]
    plans[0].apply()
    assert current.read_bytes() == kept
    assert files.plan_rekeys([str(tmp_path / "secrets")], rules, str(tmp_path / ".sops.yaml"), load) == []
    assert loaded == [1], "nothing to re-key: no identity is asked for"


def test_a_file_no_identity_opens_fails_the_rekey_plan_naming_it(tmp_path):
    admin, other = _identity(), _identity()
    rules = config.site_rules([admin.public], [], [], "secrets", [])
    path = tmp_path / "secrets" / "x.sops.yaml"
    _encrypted(path, [other.public])
    with pytest.raises(age.SopsError, match="x.sops.yaml"):
        files.plan_rekeys([str(tmp_path)], rules, str(tmp_path / ".sops.yaml"), lambda: [admin])


# ---- read_for_template: what the sops lookup returns ------------------------------------------------------------

# not UTF-8 (0xff, a lone continuation byte); the canary must never reach a message
CANARY = b"canary-\xff\x80-bytes\n"


def _file(tmp_path, name, plain, fmt):
    identity = _identity()
    path = tmp_path / name
    path.write_text(new_document(plain, fmt, [identity.public], Rules()).text())
    return str(path), [identity]


@pytest.mark.parametrize("key", [None, "data"])
def test_base64_gives_the_bytes_of_a_binary_file_that_is_not_utf8(tmp_path, key):
    path, ids = _file(tmp_path, "blob.bin", {"data": text_stores.BinaryText(CANARY)}, "binary")
    assert files.read_for_template(path, key, ids, as_base64=True) == base64.b64encode(CANARY).decode()


@pytest.mark.parametrize("key", [None, "data"])
def test_without_base64_bytes_that_are_not_utf8_fail_naming_the_option_not_the_value(tmp_path, key):
    path, ids = _file(tmp_path, "blob.bin", {"data": text_stores.BinaryText(CANARY)}, "binary")
    with pytest.raises(age.SopsError) as caught:
        files.read_for_template(path, key, ids)
    message = str(caught.value)
    assert "base64=true" in message and "blob.bin" in message and "not UTF-8" in message
    assert "canary" not in message and "\\x" not in message


@pytest.mark.parametrize(("key", "expected"), [(None, {"data": "text ü\n"}), ("data", "text ü\n")])
def test_without_base64_a_utf8_binary_file_is_text(tmp_path, key, expected):
    path, ids = _file(tmp_path, "note.bin", {"data": "text ü\n"}, "binary")
    value = files.read_for_template(path, key, ids)
    assert value == expected and isinstance(value if key else value["data"], str)


@pytest.mark.parametrize(
    ("tree", "key", "expected"),
    [
        ({"a": {"b": "pässwörd"}}, "a.b", "pässwörd".encode()),
        ({"a": b"\x00\xfe"}, "a", b"\x00\xfe"),
        ({"a": ""}, "a", b""),
    ],
)
def test_base64_of_a_key_is_its_bytes_a_string_as_utf8(tmp_path, tree, key, expected):
    path, ids = _file(tmp_path, "app.sops.yaml", tree, "yaml")
    value = files.read_for_template(path, key, ids, as_base64=True)
    assert value == base64.b64encode(expected).decode() and isinstance(value, str)


@pytest.mark.parametrize(
    ("key", "words"),
    [(None, "whole content (no key given)"), ("n", "value at 'n'"), ("m", "value at 'm'")],
)
def test_base64_takes_one_text_or_binary_value(tmp_path, key, words):
    path, ids = _file(tmp_path, "app.sops.yaml", {"n": 42, "m": {"x": "canary"}}, "yaml")
    with pytest.raises(age.SopsError, match="base64=true encodes one text or binary value") as caught:
        files.read_for_template(path, key, ids, as_base64=True)
    assert words in str(caught.value) and "canary" not in str(caught.value)


def test_without_base64_a_nested_value_that_is_not_utf8_is_named_by_its_key(tmp_path):
    path, ids = _file(tmp_path, "app.sops.yaml", {"a": {"b.c": CANARY, "ok": b"fine"}}, "yaml")
    with pytest.raises(age.SopsError, match=r"""the value at '\["a"\]\["b.c"\]' of .*app.sops.yaml is not UTF-8"""):
        files.read_for_template(path, None, ids)
    assert files.read_for_template(path, '["a"]["ok"]', ids) == "fine"
