"""Stage plugins: each module exposes ``cases(ctx: harness.Context) -> list[harness.Case]``.

Modules are listed in ``STAGES`` in run order. A module for a command this project does not have yet returns a
case with ``missing`` set, so the table shows a "not implemented yet" row instead of failing.
"""

from __future__ import annotations

STAGES = ("warc", "tag", "dedupe", "near_dup", "mix", "tokens", "stat")
# The module of each stage (`stat` would shadow the standard library's `stat` for scripts run from this folder).
MODULES = {stage: stage for stage in STAGES} | {"stat": "attribute_stats"}
