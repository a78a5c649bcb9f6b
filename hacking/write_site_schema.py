#!/usr/bin/env python3
"""Write docs/site.schema.json from the schema in plugins/module_utils/_site_schema.py.

Editors (VS Code YAML, JetBrains) validate site files against the JSON file; the unit tests fail when the two differ.
"""

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "collections"))

from ansible_collections.nerv.homelab.plugins.module_utils._site_schema import SITE_SCHEMA  # noqa: E402

if __name__ == "__main__":
    target = REPO / "docs" / "site.schema.json"
    target.write_text(json.dumps(SITE_SCHEMA, indent=2) + "\n")
    print("wrote", target.relative_to(REPO))
