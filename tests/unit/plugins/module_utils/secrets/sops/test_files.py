"""sops_file's values option as key paths: top-level keys are key paths, nested keys are names as they are."""

from __future__ import annotations

import pytest

from ansible_collections.nerv.homelab.plugins.module_utils.secrets.sops import files


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
