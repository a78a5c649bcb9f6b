# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Problem, Report and SiteError: what site validation hands back."""

from __future__ import annotations

from dataclasses import dataclass, field

from ansible_collections.nerv.homelab.plugins.module_utils.common.errors import NervError


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a site file: where (a field path such as hosts[1].ip), what, and how to fix it."""

    path: str
    message: str
    fix: str
    level: str = "error"

    def __str__(self) -> str:
        return "{}: {}. Fix: {}".format(self.path or "(top level)", self.message, self.fix)

    def as_dict(self) -> dict:
        return {"path": self.path, "message": self.message, "fix": self.fix, "level": self.level}


def join_path(path: str, key) -> str:
    """The field path of key under path, as problems name it: hosts[1].ip."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


@dataclass
class Report:
    errors: list = field(default_factory=list)
    warnings: list = field(default_factory=list)


class SiteError(NervError):
    """The site file has problems; str() lists every one, one per line."""

    def __init__(self, problems: list, warnings: list | None = None):
        self.problems = list(problems)
        self.warnings = list(warnings or [])
        count = len(self.problems)
        lines = ["site file has {} problem{}:".format(count, "" if count == 1 else "s")]
        super().__init__(
            "\n".join(lines + [str(p) for p in self.problems]),
            problems=[p.as_dict() for p in self.problems],
            site_warnings=[p.as_dict() for p in self.warnings],
        )
