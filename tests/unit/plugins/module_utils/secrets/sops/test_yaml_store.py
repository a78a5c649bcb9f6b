"""The YAML store's rules, each pinned with what the real sops 3.11 (go-yaml v3, Go's strconv) gives.

The expected values were read off the real sops: tests/integration/secrets/test_sops_interop_yaml.py checks the same
behaviour against the binary itself on a whole corpus.
"""

from __future__ import annotations

import math

import pytest

from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops import document as sops
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops import stores as sops_stores
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops import yaml_store as sops_yaml
from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops.yaml_store import Comment, Timestamp

# ---- numbers -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "mac_text"),
    [(1e-07, "0.0000001"), (1.5e30, "1500000000000000000000000000000"), (math.inf, "+Inf"), (-math.inf, "-Inf")],
)
def test_the_mac_bytes_of_a_float_are_go_format_f(value, mac_text):
    assert sops.value_bytes(value) == ("float", mac_text.encode())


def test_the_mac_bytes_of_nan_are_go_nan():
    assert sops.go_float(math.nan) == "NaN"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1234567.0, "1.234567e+06"),
        (100000.0, "100000"),
        (1e-05, "1e-05"),
        (0.0001, "0.0001"),
        (-0.0, "-0"),
        (1.0, "1"),
        (2.5e-05, "2.5e-05"),
        (123456789.0, "1.23456789e+08"),
        (1e21, "1e+21"),
        (5e-324, "5e-324"),
        (math.inf, ".inf"),
        (-math.inf, "-.inf"),
        (math.nan, ".nan"),
    ],
)
def test_a_clear_float_is_written_as_go_yaml_writes_it(value, text):
    assert sops_yaml.go_yaml_float(value) == text


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("yes", "yes"),
        ("on", "on"),
        ("True", True),
        ("0x1F", 31),
        ("012", 10),
        ("0o17", 15),
        ("0b101", 5),
        ("1_000", 1000),
        ("+12", 12),
        ("1e3", 1000.0),
        ("1e-07", 1e-07),
        (".5", 0.5),
        ("1.", 1.0),
        ("08", 8.0),
        ("1:20", "1:20"),
        ("~", None),
        ("", None),
        ("1.0.0", "1.0.0"),
    ],
)
def test_plain_scalars_resolve_as_go_yaml_v3_resolves_them(text, value):
    resolved = sops_yaml.resolve_plain(text)
    assert resolved == value and type(resolved) is type(value)


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("2024-01-02", "2024-01-02T00:00:00Z"),
        ("2024-1-2", "2024-01-02T00:00:00Z"),
        ("2024-01-02T03:04:05Z", "2024-01-02T03:04:05Z"),
        ("2024-01-02T03:04:05.500+02:00", "2024-01-02T03:04:05.5+02:00"),
        ("2001-12-14t21:59:43.10-05:00", "2001-12-14T21:59:43.1-05:00"),
        ("2024-01-02 03:04:05", "2024-01-02T03:04:05Z"),
        ("2024-01-02T03:04:05+00:00", "2024-01-02T03:04:05Z"),
        ("2024-01-02T03:04:05.1234567891Z", "2024-01-02T03:04:05.123456789Z"),
        ("2024-01-02 3:4:5", "2024-01-02T03:04:05Z"),
        ("2024-01-02t03:04:05+01:30", "2024-01-02T03:04:05+01:30"),
    ],
)
def test_dates_and_timestamps_are_time_values_in_go_rfc3339_nano(text, canonical):
    stamp = sops_yaml.resolve_plain(text)
    assert isinstance(stamp, Timestamp) and stamp == canonical
    assert sops.value_bytes(stamp) == ("time", canonical.encode())


@pytest.mark.parametrize(
    "text",
    ["2024-02-30", "2024-13-01", "2001-12-14 21:59:43.10 -5", "24-01-02", "2024-01-02T03:04:05", "２０２４-01-02"],
)
def test_what_is_not_a_valid_go_timestamp_stays_a_string(text):
    assert isinstance(sops_yaml.resolve_plain(text), str)


def test_a_time_value_encrypts_as_type_time_and_decrypts_back():
    key = bytes(range(32))
    text = sops.encrypt_value(Timestamp("2024-01-02T00:00:00Z"), key, "since:")
    assert text.endswith(",type:time]")
    value, _nonce = sops.decrypt_value(text, key, "since:")
    assert isinstance(value, Timestamp) and value == "2024-01-02T00:00:00Z"


# ---- strings -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("plain text", "plain text"),
        ("a: b", "'a: b'"),
        ("true", '"true"'),
        ("yes", '"yes"'),
        ("y", '"y"'),
        ("1:20", '"1:20"'),
        ("2024-01-02", '"2024-01-02"'),
        ("", '""'),
        (" space", "' space'"),
        ("it's: here", "'it''s: here'"),
        ("x'y", "x'y"),
        ("a #b", "'a #b'"),
        ("x#y", "x#y"),
        ("*ref", "'*ref'"),
        ("- x", "'- x'"),
        ("-x", "-x"),
        ("a\tb", '"a\\tb"'),
        ("ctl\x01", '"ctl\\x01"'),
        ("smile \U0001f600", '"smile \\U0001F600"'),
        ("héllo ✓", "héllo ✓"),
        ("<<", "!!merge <<"),
    ],
)
def test_strings_are_quoted_as_go_yaml_quotes_them(value, written):
    assert sops_stores.dump({"k": value}, None, "yaml") == f"k: {written}\n"


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("one\ntwo\n", "|\n    one\n    two\n"),
        ("one\ntwo", "|-\n    one\n    two\n"),
        ("a\n\n", "|+\n    a\n\n"),
        (" lead\nx\n", "|4\n     lead\n    x\n"),
        ("trail \nx\n", '"trail \\nx\\n"\n'),
    ],
)
def test_multi_line_strings_are_literal_blocks_as_go_yaml_writes_them(value, written):
    assert sops_stores.dump({"k": value}, None, "yaml") == f"k: {written}"


def test_a_sequence_item_block_that_needs_an_indentation_indicator_is_double_quoted_so_it_reads_back():
    text = sops_stores.dump({"l": [" lead\nx", {"k": "\nx"}]}, None, "yaml")
    assert text == 'l:\n    - " lead\\nx"\n    - k: "\\nx"\n'
    assert sops_stores.load(text, "yaml")[0] == {"l": [" lead\nx", {"k": "\nx"}]}


# ---- layout and comments -----------------------------------------------------------------------------------

LAYOUT = """\
# top
a:
    # in a
    b: 1 # after b
    c:
        - x
        # in the list
        - - w
          - z
        - k: v
          # in an item
          j: |
            text
    # ends the innermost block, as in go-yaml
# end
"""
# LAYOUT as the real sops writes it
SOPS_LAYOUT = """\
# top
a:
    # in a
    # after b
    b: 1
    c:
        - x
        # in the list
        - - w
          - z
        - k: v
          # in an item
          j: |
            text
          # ends the innermost block, as in go-yaml
# end
"""


def texts(node):
    """The tree with every comment as '#text', so layouts compare as plain data."""
    if isinstance(node, dict):
        return [(f"#{k.text}" if isinstance(k, Comment) else k, texts(v)) for k, v in node.items()]
    if isinstance(node, list):
        return [f"#{v.text}" if isinstance(v, Comment) else texts(v) for v in node]
    return node


def test_comments_are_placed_in_the_tree_where_sops_keeps_them():
    tree, _meta = sops_stores.load(LAYOUT, "yaml")
    assert texts(tree) == [
        ("# top", None),
        (
            "a",
            [
                ("# in a", None),
                ("# after b", None),
                ("b", 1),
                (
                    "c",
                    [
                        "x",
                        "# in the list",
                        ["w", "z"],
                        [
                            ("k", "v"),
                            ("# in an item", None),
                            ("j", "text\n"),
                            ("# ends the innermost block, as in go-yaml", None),
                        ],
                    ],
                ),
            ],
        ),
        ("# end", None),
    ]


def test_the_layout_is_written_back_as_sops_writes_it():
    tree, _meta = sops_stores.load(LAYOUT, "yaml")
    assert sops_stores.dump(tree, None, "yaml") == SOPS_LAYOUT
    again, _meta = sops_stores.load(SOPS_LAYOUT, "yaml")
    assert sops_stores.dump(again, None, "yaml") == SOPS_LAYOUT


def test_a_comment_in_a_sequence_is_encrypted_as_an_item_and_one_in_a_mapping_as_a_comment():
    tree, _meta = sops_stores.load("l:\n    - a\n    # in l\n    - b\n# top\nk: v\n", "yaml")
    document = sops.new_document(tree, "yaml", [_identity()], sops.Rules())
    lines = document.text().splitlines()
    assert lines[2].startswith("    - ENC[AES256_GCM,") and lines[2].endswith(",type:comment]")
    assert lines[4].startswith("#ENC[AES256_GCM,") and lines[4].endswith(",type:comment]")


def _identity() -> str:
    pyrage = pytest.importorskip("pyrage", reason="pyrage (requirements.txt) is needed for age")
    return str(pyrage.x25519.Identity.generate().to_public())
