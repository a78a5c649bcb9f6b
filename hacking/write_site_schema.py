"""Write docs/site.schema.json and the field reference in docs/site.md from plugins/module_utils/site/schema.py.

Editors (VS Code YAML, JetBrains) validate site files against the JSON file; the unit tests fail when either
generated part differs from the schema, so run this after changing the schema.
"""

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "collections"))

from ansible_collections.nerv.homelab.plugins.module_utils.site.schema import SITE_SCHEMA  # noqa: E402

BEGIN, END = "<!-- BEGIN GENERATED FIELDS -->", "<!-- END GENERATED FIELDS -->"


def _resolve(schema):
    if "$ref" not in schema:
        return schema
    merged = dict(SITE_SCHEMA["$defs"][schema["$ref"].rsplit("/", 1)[1]])
    merged.update((k, v) for k, v in schema.items() if k != "$ref")
    return merged


def _type(schema):
    kind = schema.get("type", "")
    if isinstance(kind, list):
        return " or ".join(kind)
    if kind == "array":
        return "list of " + _type(_resolve(schema.get("items", {})))
    if "enum" in schema:
        return " \\| ".join(f"`{v}`" for v in schema["enum"])
    return kind + (" ({})".format(schema["format"]) if "format" in schema else "")


def _rule(schema):
    parts = [schema.get("description", "")]
    if "minimum" in schema:
        parts.append("Range {}..{}.".format(schema["minimum"], schema.get("maximum", "")))
    if "x-fix" in schema:
        parts.append("If wrong: " + schema["x-fix"] + ".")
    return " ".join(p for p in parts if p).replace("|", "\\|")


def rows(schema, path=""):
    schema = _resolve(schema)
    required = set(schema.get("required", []))
    for key, sub in schema.get("properties", {}).items():
        sub = _resolve(sub)
        where = f"{path}.{key}" if path else key
        default = json.dumps(sub["default"]) if "default" in sub else ""
        yield "| `{}` | {} | {} | {} | {} |".format(
            where, _type(sub), "yes" if key in required else "", default and "`" + default + "`", _rule(sub)
        )
        items = _resolve(sub.get("items", {}))
        kinds = sub.get("type") if isinstance(sub.get("type"), list) else [sub.get("type")]
        if "object" in kinds:
            yield from rows(sub, where)
        elif items.get("type") == "object":
            yield from rows(items, where + "[]")


def field_table():
    head = ["| field | type | required | default | meaning and rule |", "|---|---|---|---|---|"]
    return "\n".join([BEGIN] + head + list(rows(SITE_SCHEMA)) + [END])


def render_doc(text):
    start, stop = text.index(BEGIN), text.index(END) + len(END)
    return text[:start] + field_table() + text[stop:]


if __name__ == "__main__":
    (REPO / "docs" / "site.schema.json").write_text(json.dumps(SITE_SCHEMA, indent=2) + "\n")
    doc = REPO / "docs" / "site.md"
    doc.write_text(render_doc(doc.read_text()))
    print("wrote docs/site.schema.json and the field table of docs/site.md")
