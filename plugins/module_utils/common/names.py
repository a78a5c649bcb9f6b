# Copyright: nerv.homelab contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Name rules the collection checks in several places (the site schema, the modules' inputs): one copy of each."""

from __future__ import annotations

import re

# A DNS label as RFC 1123 and Kubernetes take it: lower-case letters, digits and '-', at most 63 characters
DNS_LABEL = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
_DNS_LABEL = re.compile(DNS_LABEL)


def is_dns_label(value) -> bool:
    """Whether value is a DNS label. Matched whole: with re.match the pattern's $ also matches before a trailing
    newline, and 'cp1\\n' would pass."""
    return isinstance(value, str) and _DNS_LABEL.fullmatch(value) is not None
