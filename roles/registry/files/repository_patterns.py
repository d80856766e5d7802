# Copyright: selfhosted.registry contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Repository patterns, as registry_access_rules and registry_retention_policies write them.

`*` matches within one path component, `**` across them: `team/*` matches
team/app, not team/app/cache; `team/**` matches both. The one matching rule of
the host programs beside this file (token_server.py, registry_gc.py); what a
pattern may look like is checked by the role's preflight.
"""

from __future__ import annotations

import re


def pattern_regex(pattern):
    """A repository pattern as a compiled regex of the whole name."""
    parts = re.split(r'(\*\*|\*)', pattern)
    regex = ''.join('.*' if part == '**' else '[^/]*' if part == '*' else re.escape(part) for part in parts)
    return re.compile(r'\A%s\Z' % regex)
