"""The native sops format: values, MAC, stores, re-keying and rotation, and files written by the real sops."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ansible_collections.nerv.homelab.plugins.module_utils.secrets import age
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.age import SopsError
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops import document as sops
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops import stores as sops_stores

pytest.importorskip("pyrage", reason="pyrage (requirements.txt) is needed for age")

SOPS_FIXTURES = Path(__file__).resolve().parents[6].parent / "shared" / "fixtures" / "sops"


def shared_sops_fixture() -> Path:
    """../shared/fixtures/sops (files written by the real sops); skips when the checkout has no sibling shared/."""
    if not (SOPS_FIXTURES / "keys.txt").exists():
        pytest.skip(f"{SOPS_FIXTURES} is missing: the sops compatibility tests need the sibling shared/fixtures")
    return SOPS_FIXTURES


CANARY = "canary-Secret-7f3a9c"


def identity():
    key = age.pyrage.x25519.Identity.generate()
    return age.Identity(key, "test", str(key.to_public()))


@pytest.mark.parametrize(
    ("value", "text"),
    [(1.0, "1"), (25.4, "25.4"), (1e16, "10000000000000000"), (0.1, "0.1"), (-2.5, "-2.5"), (1.5e-7, "0.00000015")],
)
def test_floats_are_written_as_go_formats_them(value, text):
    assert sops.go_float(value) == text


@pytest.mark.parametrize(
    ("value", "kind"),
    [("text", "str"), (7, "int"), (2.5, "float"), (True, "bool"), (False, "bool"), (b"\x00\x01", "bytes")],
)
def test_every_type_round_trips_with_its_sops_type(value, kind):
    key = bytes(range(32))
    text = sops.encrypt_value(value, key, "a:b:")
    assert re.fullmatch(rf"ENC\[AES256_GCM,data:[^,]+,iv:[^,]+,tag:[^,]+,type:{kind}\]", text)
    iv = re.search(r"iv:([^,]+)", text).group(1)
    assert len(sops.base64.b64decode(iv)) == 32, "sops uses a 32-byte nonce"
    assert sops.decrypt_value(text, key, "a:b:")[0] == value


def test_the_path_is_the_additional_data():
    key = bytes(32)
    text = sops.encrypt_value("v", key, "a:b:")
    with pytest.raises(SopsError, match="does not decrypt"):
        sops.decrypt_value(text, key, "a:c:")


def test_empty_strings_stay_unencrypted():
    assert sops.encrypt_value("", bytes(32), "a:") == ""


def test_rules_apply_to_any_component_of_the_path():
    assert not sops.Rules().encrypts(["db_unencrypted", "user"])
    assert sops.Rules().encrypts(["db", "user"])
    kubernetes = sops.Rules("encrypted_regex", "^(data|stringData)$")
    assert kubernetes.encrypts(["stringData", "password"])
    assert not kubernetes.encrypts(["metadata", "name"])


def test_two_crypt_rules_in_one_file_are_refused():
    with pytest.raises(SopsError, match="only one of"):
        sops.Rules.from_metadata({"encrypted_regex": "x", "unencrypted_suffix": "_u"})


def _new(plain, fmt="yaml", ids=None, rules=None):
    ids = ids or [identity()]
    doc = sops.new_document(plain, fmt, [i.public for i in ids], rules or sops.Rules())
    return doc.text(), ids


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_a_new_file_decrypts_and_hides_every_value(fmt):
    plain = {
        "db": {"password": CANARY, "port": 5432, "ratio": 0.5, "on": True},
        "list": [CANARY, "x"],
        "note_unencrypted": "hi",
    }
    text, ids = _new(plain, fmt)
    assert CANARY not in text and "5432" not in text
    assert "hi" in text, "the unencrypted_suffix value stays readable"
    assert sops.Document.parse(text, fmt).decrypt(ids) == plain


def test_a_dotenv_file_round_trips_with_its_comments():
    tree, _meta = sops_stores.load("# the token\nTOKEN=abc\nMULTI=a\\nb\n", "dotenv")
    text, ids = _new(tree, "dotenv")
    assert "the token" not in text, "comments are encrypted, as sops does"
    plain = sops.Document.parse(text, "dotenv").decrypt(ids)
    assert [k.text if isinstance(k, sops_stores.Comment) else k for k in plain] == [" the token", "TOKEN", "MULTI"]
    assert plain["MULTI"] == "a\nb"


def test_a_changed_value_is_detected_by_the_mac():
    text, ids = _new({"a": "one", "b": "two"})
    doc = sops.Document.parse(text, "yaml")
    a, b = doc.tree["a"], doc.tree["b"]
    # swap two ciphertexts between keys of equal length: each fails its additional data
    swapped = text.replace(a, "@@").replace(b, a).replace("@@", b)
    with pytest.raises(SopsError):
        sops.Document.parse(swapped, "yaml").decrypt(ids)


def test_a_changed_unencrypted_value_breaks_the_mac():
    text, ids = _new({"a": "one", "note_unencrypted": "plain"})
    tampered = text.replace("note_unencrypted: plain", "note_unencrypted: edited")
    with pytest.raises(SopsError, match="MAC mismatch"):
        sops.Document.parse(tampered, "yaml").decrypt(ids)


def test_a_removed_value_breaks_the_mac():
    text, ids = _new({"a": "one", "b": "two"})
    tampered = "\n".join(line for line in text.splitlines() if not line.startswith("b:")) + "\n"
    with pytest.raises(SopsError, match="MAC mismatch"):
        sops.Document.parse(tampered, "yaml").decrypt(ids)


def test_unchanged_values_keep_their_ciphertext_when_one_changes():
    text, ids = _new({"a": "one", "b": "two"})
    doc = sops.Document.parse(text, "yaml")
    plain = doc.decrypt(ids)
    old = dict(doc.tree)
    doc.encrypt({**plain, "b": "three"})
    assert doc.tree["a"] == old["a"] and doc.tree["b"] != old["b"]
    assert sops.Document.parse(doc.text(), "yaml").decrypt(ids)["b"] == "three"


def test_updatekeys_adds_a_recipient_and_leaves_values_mac_and_date():
    admin, host = identity(), identity()
    text, _ids = _new({"token": CANARY}, ids=[admin])
    doc = sops.Document.parse(text, "yaml")
    doc.decrypt([admin])
    before = (doc.tree, doc.meta["mac"], doc.meta["lastmodified"])
    assert doc.set_recipients([admin.public, host.public]) is True
    assert (doc.tree, doc.meta["mac"], doc.meta["lastmodified"]) == before
    assert sops.Document.parse(doc.text(), "yaml").decrypt([host])["token"] == CANARY
    assert doc.set_recipients([host.public, admin.public]) is False, "the same recipients are no change"


def test_updatekeys_removes_a_recipient():
    admin, host = identity(), identity()
    text, _ids = _new({"token": CANARY}, ids=[admin, host])
    doc = sops.Document.parse(text, "yaml")
    doc.decrypt([admin])
    doc.set_recipients([admin.public])
    with pytest.raises(SopsError, match="encrypted to: " + admin.public):
        sops.Document.parse(doc.text(), "yaml").decrypt([host])


def test_rotate_makes_a_new_data_key_and_new_ciphertexts():
    text, ids = _new({"token": CANARY})
    doc = sops.Document.parse(text, "yaml")
    doc.decrypt(ids)
    old_key, old_value = doc.data_key, doc.tree["token"]
    doc.rotate()
    assert doc.data_key != old_key and doc.tree["token"] != old_value
    assert sops.Document.parse(doc.text(), "yaml").decrypt(ids)["token"] == CANARY


def test_no_matching_identity_names_the_recipients_and_no_secret():
    owner, stranger = identity(), identity()
    text, _ids = _new({"token": CANARY}, ids=[owner])
    with pytest.raises(SopsError) as caught:
        sops.Document.parse(text, "yaml").decrypt([stranger])
    assert owner.public in str(caught.value) and CANARY not in str(caught.value)


def test_a_plain_file_is_not_a_sops_file():
    with pytest.raises(SopsError, match="no sops metadata"):
        sops.Document.parse("a: b\n", "yaml")


def test_shamir_key_groups_are_refused():
    text, _ids = _new({"a": "b"})
    doc = sops.Document.parse(text, "yaml")
    doc.meta["key_groups"] = [{"age": []}, {"age": []}]
    with pytest.raises(SopsError, match="Shamir"):
        doc.check_metadata("f")


@pytest.mark.parametrize(
    ("meta", "feature"),
    [
        ({"pgp": [{"fp": "ABCD", "enc": "x"}]}, r"PGP keys \(pgp\)"),
        ({"kms": [{"arn": "arn:aws:kms:eu-west-1:1:key/x", "enc": "x"}]}, "AWS KMS keys"),
        ({"gcp_kms": [{"resource_id": "projects/p", "enc": "x"}]}, "GCP KMS keys"),
        ({"azure_kv": [{"vaultUrl": "https://v", "enc": "x"}]}, "Azure Key Vault keys"),
        ({"hc_vault": [{"vault_address": "https://v", "enc": "x"}]}, "HashiCorp Vault keys"),
        ({"hckms": [{"key_id": "region:key", "enc": "x"}]}, "HuaweiCloud KMS keys"),
        ({"shamir_threshold": "2"}, r"Shamir secret sharing \(key groups: 1, shamir_threshold: 2\)"),
    ],
)
def test_metadata_needing_more_than_age_is_refused_naming_the_feature(meta, feature):
    text, _ids = _new({"a": "b"})
    doc = sops.Document.parse(text, "yaml")
    doc.meta.update(meta)
    with pytest.raises(SopsError, match=feature):
        doc.check_metadata("f")


def test_pgp_keys_inside_the_one_key_group_are_refused():
    text, _ids = _new({"a": "b"})
    doc = sops.Document.parse(text, "yaml")
    doc.meta["key_groups"] = [{"age": doc.meta.pop("age"), "hc_vault": [], "pgp": [{"fp": "ABCD", "enc": "x"}]}]
    with pytest.raises(SopsError, match="PGP keys"):
        doc.check_metadata("f")


@pytest.mark.parametrize(
    ("key", "parts"),
    [
        ("a", ["a"]),
        ("a.b.c", ["a", "b", "c"]),
        ('["a.b"]', ["a.b"]),
        ("['a.b']", ["a.b"]),
        ('["a"]["b.c"]', ["a", "b.c"]),
        ("['say \"hi\"']", ['say "hi"']),
        (["a.b", "c"], ["a.b", "c"]),
    ],
)
def test_key_paths_are_dotted_or_in_sops_index_syntax(key, parts):
    assert sops.split_key(key) == parts
    assert sops.split_key(sops.join_key(parts)) == parts


@pytest.mark.parametrize(
    ("key", "message"),
    [("a..b", "not a key path"), ('["a"', "not in sops' index syntax"), ('["a"][0]', r"indexes a list \(\[0\]\)")],
)
def test_broken_key_paths_are_refused(key, message):
    with pytest.raises(SopsError, match=message):
        sops.split_key(key)


def test_a_key_path_is_written_dotted_unless_a_name_holds_a_dot():
    assert sops.join_key(["a", "b"]) == "a.b"
    assert sops.join_key(["a", "b.c"]) == '["a"]["b.c"]'


def test_a_bad_recipient_is_refused():
    with pytest.raises(SopsError, match="not an age recipient"):
        sops.new_document({"a": "b"}, "yaml", ["age1notakey"], sops.Rules())


# ---- files written by the real sops ---------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "fmt"), [("format.age.yaml", "yaml"), ("example.age.json", "json")])
def test_files_written_by_sops_decrypt_to_the_expected_leaves(name, fmt):
    folder = shared_sops_fixture()
    ids = age.load_identities({"SOPS_AGE_KEY_FILE": str(folder / "keys.txt")})
    doc = sops.Document.parse((folder / name).read_text(), fmt)
    plain = doc.decrypt(ids)
    expected = json.loads((folder / f"{name}.expected.json").read_text())
    assert _leaves(plain, doc) == [tuple(e) for e in expected]


def _leaves(node, doc, path=()):
    rules = sops.Rules.from_metadata(doc.meta)
    if isinstance(node, dict):
        return [leaf for k, v in node.items() for leaf in _leaves(v, doc, (*path, k))]
    if isinstance(node, list):
        return [leaf for v in node for leaf in _leaves(v, doc, path)]
    kind, raw = sops.value_bytes(node)
    plain = not rules.encrypts(list(path)) or node == ""
    return [(":".join(path), "plain" if plain else kind, raw.decode())]


def test_the_dotenv_file_written_by_sops_keeps_the_spaces_around_the_equals_sign():
    folder = shared_sops_fixture()
    ids = age.load_identities({"SOPS_AGE_KEY_FILE": str(folder / "keys.txt")})
    assert sops.Document.parse((folder / "format.age.env").read_text(), "dotenv").decrypt(ids) == {"foo ": " bar"}


@pytest.mark.parametrize(
    ("name", "fmt"), [("format.age.yaml", "yaml"), ("example.age.json", "json"), ("format.age.env", "dotenv")]
)
def test_re_encrypting_a_sops_file_unchanged_gives_it_back_byte_for_byte(name, fmt):
    folder = shared_sops_fixture()
    ids = age.load_identities({"SOPS_AGE_KEY_FILE": str(folder / "keys.txt")})
    original = (folder / name).read_text()
    doc = sops.Document.parse(original, fmt)
    doc.encrypt(doc.decrypt(ids), touch=False)
    assert doc.text() == original


def test_a_sops_file_gains_a_recipient_and_the_new_one_decrypts_it():
    folder = shared_sops_fixture()
    ids = age.load_identities({"SOPS_AGE_KEY_FILE": str(folder / "keys.txt")})
    host = identity()
    doc = sops.Document.parse((folder / "format.age.yaml").read_text(), "yaml")
    doc.decrypt(ids)
    doc.set_recipients([*doc.recipients, host.public])
    assert sops.Document.parse(doc.text(), "yaml").decrypt([host]) == {"foo": "bar"}


def test_a_tampered_sops_file_is_refused():
    folder = shared_sops_fixture()
    ids = age.load_identities({"SOPS_AGE_KEY_FILE": str(folder / "keys.txt")})
    text = (folder / "example.age.json").read_text().replace('"anEmptyValue": ""', '"anEmptyValue": "x"')
    with pytest.raises(SopsError, match="anEmptyValue"):
        sops.Document.parse(text, "json").decrypt(ids)


def test_a_missing_key_is_named_as_it_can_be_given_back():
    with pytest.raises(SopsError, match=re.escape("""key '["a.b"]["c"]' is not in the file""")):
        sops.get_path({"a.b": {"d": 1}}, ["a.b", "c"])
