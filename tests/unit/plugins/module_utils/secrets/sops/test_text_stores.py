"""The JSON, binary and INI stores: sops' choice of store, Go's JSON numbers and strings, ini.v1's reading, layout."""

from __future__ import annotations

import math

import pytest

from ansible_collections.nerv.homelab.plugins.module_utils.secrets.age import SopsError
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops import document as sops
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops import files as sops_files
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops import stores as sops_stores
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops import text_stores
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops.text_stores import BinaryText, Comment, JsonInt

pytest.importorskip("pyrage", reason="pyrage (requirements.txt) is needed for age")


@pytest.mark.parametrize(
    ("path", "fmt"),
    [
        ("secrets/k3s.sops.yaml", "yaml"),
        ("a.yml", "yaml"),
        ("a.json", "json"),
        (".env", "dotenv"),
        ("prod.env", "dotenv"),
        ("app.ini", "ini"),
        ("key.pem", "binary"),
        ("noextension", "binary"),
        ("a.YAML", "binary"),  # sops compares suffixes as written
        ("a.env.bak", "binary"),
        ("a.json.ini", "ini"),
    ],
)
def test_the_store_follows_sops_format_for_path(path, fmt):
    assert sops_stores.format_for(path) == fmt


def test_an_explicit_format_wins_and_an_unknown_one_is_refused():
    assert sops_stores.format_for("a.yaml", "binary") == "binary"
    with pytest.raises(SopsError, match="unknown sops format 'toml'"):
        sops_stores.format_for("a.toml", "toml")


# ---- JSON ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value", "kind"),
    [
        ("42", 42, JsonInt),
        ("-7", -7, JsonInt),
        ("1.0", 1, JsonInt),
        ("1e3", 1000, JsonInt),
        ("12345678901234567890", 12345678901234567000, JsonInt),  # the float64 nearest, in Go's digits
        ("1e20", 10**20, JsonInt),
        ("1e21", 1e21, float),
        ("1.5", 1.5, float),
        ("1.5E-7", 1.5e-7, float),
        ("0", 0, JsonInt),
    ],
)
def test_json_numbers_are_float64s_and_integral_ones_stay_integers(text, value, kind):
    number = text_stores.json_number(text)
    assert number == value and isinstance(number, kind)


def test_negative_zero_keeps_its_sign_and_too_big_a_number_is_refused():
    assert math.copysign(1, text_stores.json_number("-0")) == -1
    for too_big in ("1e400", 10**400):
        with pytest.raises(SopsError, match="float64"):
            text_stores.json_number(too_big)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.5e-7, "1.5e-7"),
        (-1.5e-7, "-1.5e-7"),
        (1e-10, "1e-10"),
        (1.23e-18, "1.23e-18"),
        (0.000001, "0.000001"),
        (1e21, "1e+21"),
        (1.2345678901234568e29, "1.2345678901234568e+29"),
        (1e300, "1e+300"),
        (123456.5, "123456.5"),
        (-0.0, "-0"),
    ],
)
def test_json_floats_are_written_as_go_encoding_json_writes_them(value, text):
    assert text_stores.json_float(value) == text


@pytest.mark.parametrize(
    ("text", "written"),
    [
        ("<a>&", '"\\u003ca\\u003e\\u0026"'),
        ("tab\tnl\ncr\rbs\bff\f", '"tab\\tnl\\ncr\\rbs\\bff\\f"'),
        ("\x01\x1f\x7f", '"\\u0001\\u001f\x7f"'),
        ("\u2028\u2029", '"\\u2028\\u2029"'),
        ('q"b\\', '"q\\"b\\\\"'),
        ("héllo ✓", '"héllo ✓"'),
    ],
)
def test_json_strings_are_escaped_as_go_json_marshal_escapes_them(text, written):
    assert text_stores.json_string(text) == written


def test_json_layout_is_sops_tab_indent_with_compact_empty_containers():
    tree = {"a": JsonInt(1), "b": [], "c": {}, "d": [None, True, 2.5], "e": {"f": "g"}}
    expected = (
        '{\n\t"a": 1,\n\t"b": [],\n\t"c": {},\n\t"d": [\n\t\tnull,\n\t\ttrue,\n\t\t2.5\n\t],'
        '\n\t"e": {\n\t\t"f": "g"\n\t}\n}\n'
    )
    assert sops_stores.dump(tree, None, "json") == expected
    assert sops_stores.load(expected, "json")[0] == tree


def test_json_refuses_nan_and_infinities():
    with pytest.raises(SopsError, match="not valid JSON"):
        sops_stores.load('{"a": NaN}', "json")
    with pytest.raises(SopsError, match="infinities"):
        sops_stores.dump({"a": math.inf}, None, "json")


def test_integers_in_a_json_file_are_typed_and_hashed_as_sops_floats():
    assert sops.value_bytes(JsonInt(42)) == ("float", b"42")
    assert sops_stores.prepare({"a": [7, True, {"b": 2**64}]}, "json") == {"a": [7, True, {"b": 18446744073709552000}]}
    prepared = sops_stores.prepare({"a": [7, True]}, "json")
    assert isinstance(prepared["a"][0], JsonInt) and prepared["a"][1] is True
    assert sops_stores.prepare({"a": 7}, "yaml")["a"].__class__ is int


# ---- binary ----------------------------------------------------------------------------------------------------


def test_a_str_value_that_is_not_utf8_keeps_its_bytes_and_type():
    key = bytes(range(32))
    text = sops.encrypt_value(BinaryText(b"\xff\x00"), key, "data:")
    assert text.endswith(",type:str]")
    value, _nonce = sops.decrypt_value(text, key, "data:")
    assert isinstance(value, BinaryText) and value == b"\xff\x00"
    assert sops.value_bytes(value) == ("str", b"\xff\x00")
    assert sops.decrypt_value(sops.encrypt_value("é", key, "data:"), key, "data:")[0] == "é"


def test_a_plain_binary_file_is_its_content_as_data():
    assert sops_stores.load("any text: [not yaml\n", "binary") == ({"data": "any text: [not yaml\n"}, None)
    assert sops_stores.load('{"json": "without sops"}', "binary") == ({"data": '{"json": "without sops"}'}, None)
    assert sops_stores.dump({"data": BinaryText(b"\xff")}, None, "binary") == b"\xff"


def test_a_file_that_is_not_utf8_is_not_a_sops_file(tmp_path):
    path = tmp_path / "blob.bin"
    path.write_bytes(b"\xff\xfe plain bytes")
    with pytest.raises(SopsError, match="blob.bin is not a sops file: it is not UTF-8 text"):
        sops_files.open_document(str(path))


@pytest.mark.parametrize("tree", [{"data": "x", "more": "y"}, {"other": "x"}, {"data": {"nested": "x"}}])
def test_a_binary_file_holds_data_only(tree):
    with pytest.raises(SopsError, match="one value, 'data'"):
        sops_stores.dump(tree, {"version": "3.11.0"}, "binary")


# ---- INI -------------------------------------------------------------------------------------------------------


def _plain(tree: dict) -> dict:
    return {
        name: {k if isinstance(k, str) else f"#{k.text}": v for k, v in keys.items()} for name, keys in tree.items()
    }


@pytest.mark.parametrize(
    ("text", "tree"),
    [
        ("a = 1\n", {"DEFAULT": {"a": "1"}}),
        ("[s]\na: 1\n", {"DEFAULT": {}, "s": {"a": "1"}}),
        ("[s]\na = x ; note\n", {"DEFAULT": {}, "s": {"a": "x", "#note": None}}),
        ("[s]\na = x#y\n", {"DEFAULT": {}, "s": {"a": "x", "#y": None}}),
        ('[s]\na = "q"\nb = \'q\'\nc = "a"b"\n', {"DEFAULT": {}, "s": {"a": "q", "b": "q", "c": '"a"b"'}}),
        ("[s]\na = `x;y`\n", {"DEFAULT": {}, "s": {"a": "x;y"}}),
        ('[s]\na = """one\ntwo"""\n', {"DEFAULT": {}, "s": {"a": "one\ntwo"}}),
        ("[s]\na = one \\\n  two\n", {"DEFAULT": {}, "s": {"a": "one two"}}),
        ("[s]\na = b = c\n", {"DEFAULT": {}, "s": {"a": "b = c"}}),
        ("[s]\n`a=b` = c\n", {"DEFAULT": {}, "s": {"a=b": "c"}}),
        ('[s]\n"a:b" : c\n', {"DEFAULT": {}, "s": {"a:b": "c"}}),
        ('[s]\n"""a`b""" = c\n', {"DEFAULT": {}, "s": {"a`b": "c"}}),
        ("[s]\nempty =\n", {"DEFAULT": {}, "s": {"empty": ""}}),
        ("; one\n# two\n[s]\n; three\na = 1\n", {"DEFAULT": {}, "s": {"#one\n# two": None, "a": "1", "#three": None}}),
        ("[DEFAULT]\na = 1\n[s]\nb = 2\n", {"DEFAULT": {"a": "1"}, "s": {"b": "2"}}),
        ("[s]\nb = 2\n[DEFAULT]\na = 1\n", {"s": {"b": "2"}, "DEFAULT": {"a": "1"}}),
        ("\ufeff[s]\n  a = 1\n", {"DEFAULT": {}, "s": {"a": "1"}}),
    ],
)
def test_ini_is_read_as_ini_v1_reads_it_for_sops(text, tree):
    assert _plain(sops_stores.load(text, "ini")[0]) == tree


@pytest.mark.parametrize(
    ("text", "what"), [("[s]\ncanary-Ini-Line\n", "line 2 has no '='"), ("[canary-Ini-Line\n", "line 1 opens")]
)
def test_broken_ini_is_refused_naming_the_line_not_its_content(text, what):
    with pytest.raises(SopsError, match=what) as caught:
        sops_stores.load(text, "ini")
    assert "canary" not in str(caught.value)


@pytest.mark.parametrize("text", ["[s]\na = 1\n[t]\n[s]\nb = 2\n", "a = 1\n[DEFAULT]\nb = 2\n"])
def test_a_repeated_ini_section_is_refused_as_sops_keeps_both(text):
    with pytest.raises(SopsError, match=r"repeats section \[(s|DEFAULT)\]: sops keeps each"):
        sops_stores.load(text, "ini")


@pytest.mark.parametrize(
    ("tree", "text"),
    [
        ({"DEFAULT": {}, "s": {"a": "1"}}, "[s]\na = 1\n"),
        ({"s": {"a": "1"}, "DEFAULT": {"b": "2"}}, "[s]\na = 1\n\n[DEFAULT]\nb = 2\n"),
        ({"s": {}, "t": {"a": "1"}}, "[s]\n\n[t]\na = 1\n"),
    ],
)
def test_ini_sections_are_written_in_tree_order_with_only_a_first_default_headerless(tree, text):
    assert sops_stores.dump(tree, None, "ini") == text


def test_ini_layout_aligns_keys_and_quotes_values_as_ini_v1():
    section = {"a": "1", "long key": " padded ", "hash": "x#y", "lines": "one\ntwo", "tick": "a`b", "clé": "v"}
    tree = {"DEFAULT": {"top": "t"}, "s": {**section, '"q"': "1", "d=:e": "2"}}
    assert sops_stores.dump(tree, None, "ini") == (
        "top = t\n\n[s]\n"
        "a        = 1\n"
        'long key = " padded "\n'
        "hash     = `x#y`\n"
        'lines    = """one\ntwo"""\n'
        'tick     = """a`b"""\n'
        "clé     = v\n"  # ini.v1 aligns by bytes
        '`"q"`    = 1\n'
        "`d=:e`   = 2\n"
    )


def test_ini_comments_go_before_their_key_and_the_section_comment_before_its_header():
    tree = {"s": {Comment("about s"): None, "a": "1", Comment("about a\n# second"): None, "b": "2"}}
    assert sops_stores.dump(tree, None, "ini") == "; about s\n[s]\n; about a\n# second\na = 1\nb = 2\n"


def test_ini_metadata_is_the_flattened_sops_section_and_reads_back():
    meta = {"age": [{"recipient": "age1x", "enc": "-----BEGIN\nX\n"}], "lastmodified": "t", "mac": "m"}
    meta.update({"mac_only_encrypted": True, "version": "3.11.0"})
    text = sops_stores.dump({"s": {"a": "1"}}, meta, "ini")
    assert "age__list_0__map_enc       = -----BEGIN\\nX\\n\n" in text and "mac_only_encrypted         = true\n" in text
    assert sops_stores.load(text, "ini") == ({"DEFAULT": {}, "s": {"a": "1"}}, meta)


@pytest.mark.parametrize(
    ("tree", "message"),
    [({"top": "value"}, "'top' is not a section"), ({"s": {"a": {"b": "c"}}}, "'s.a' is a dict")],
)
def test_ini_holds_sections_of_strings_only(tree, message):
    with pytest.raises(SopsError, match=message):
        sops_stores.dump(sops_stores.prepare(tree, "ini"), None, "ini")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (5.0, "5.0"),
        (1.5, "1.5"),
        (123456.0, "123456.0"),
        (1234567.0, "1.234567E+06"),
        (0.0001, "0.0001"),
        (0.00001, "1E-05"),
        (-2.5e-5, "-2.5E-05"),
        (1e21, "1E+21"),
        (12345.678, "12345.678"),
        (-0.0, "-0.0"),
        (0.0, "0.0"),
        (math.inf, "+Inf"),
    ],
)
def test_floats_in_ini_and_dotenv_are_the_text_sops_prints(value, text):
    assert text_stores.go_text_float(value) == text


def test_dotenv_values_are_strings_so_that_a_clear_boolean_reads_back_the_same():
    comment = Comment(" c")
    prepared = sops_stores.prepare({comment: None, "A_unencrypted": True, "B": 5433, "C": 1e-07}, "dotenv")
    assert prepared == {comment: None, "A_unencrypted": "true", "B": "5433", "C": "1E-07"}


def test_ini_values_are_the_strings_sops_holds():
    comment = Comment(" c")
    prepared = sops_stores.prepare({"s": {"i": 5432, comment: None, "b": True, "f": 1.5, "n": None}}, "ini")
    assert prepared == {"s": {"i": "5432", comment: None, "b": "true", "f": "1.5", "n": ""}}
