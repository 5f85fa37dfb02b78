"""`dolma mix`: one stream with two attribute sets, an include rule, an exclude rule and a span replacement.

The attributes are made once per input with our `dolma tag`, untimed, and shared by both implementations:
`bench` (char_length_v1, random_number_v1) and `pii` (pii_regex_v2). The stream keeps documents of at least 100
characters, drops those whose random number is >= 0.9, and replaces e-mail address spans with a marker.
Quality: documents kept and e-mail spans replaced, which must be equal between implementations.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import yaml

from benchmarks.harness import Case, Command, Context, Impl
from benchmarks.stages.common import documents_pattern, link_inputs, tagged_attributes

INCLUDE = "$.attributes[?(@.bench__char_length_v1__length[0][2] >= 100)]"
EXCLUDE = "$.attributes[?(@.bench__random_number_v1__random[0][2] >= 0.9)]"
EMAIL_SPANS = "$.attributes.pii__pii_regex_v2__EMAIL_ADDRESS"
MARKER = "|||EMAIL_ADDRESS|||"
INPUT_MB = 100
ATTRIBUTE_SETS = {"bench": ["char_length_v1", "random_number_v1"], "pii": ["pii_regex_v2"]}


def output_counts(workdir: Path) -> dict:
    docs = replaced = 0
    for f in sorted((workdir / "output").glob("*.gz")):
        with gzip.open(f, "rt", encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    docs += 1
                    replaced += line.count(MARKER)
    return {"kept docs": docs, "e-mails replaced": replaced}


def cases(ctx: Context) -> list[Case]:
    name = "include length >= 100, exclude random >= 0.9, replace e-mails"
    if "mix" not in ctx.our_commands:
        return [Case("mix", name, missing="no `dolma mix` command on this branch")]

    def make(exe: Path, reference: bool):
        def prepare(workdir: Path, p: int) -> Command:
            link_inputs(ctx, workdir, tagged_attributes(ctx, "mix", ATTRIBUTE_SETS))
            cfg = {
                "streams": [
                    {
                        "name": "bench",
                        "documents": [documents_pattern(workdir)],
                        "attributes": list(ATTRIBUTE_SETS),
                        "output": {"path": str(workdir / "output"), "max_size_in_bytes": 100_000_000},
                        "filter": {"include": [INCLUDE], "exclude": [EXCLUDE]},
                        "span_replacement": [{"span": EMAIL_SPANS, "min_score": 0.5, "replacement": MARKER}],
                    }
                ],
                "processes": p,
            }
            (workdir / "mix.yaml").write_text(yaml.safe_dump(cfg))
            return Command(
                [str(exe), "-c", str(workdir / "mix.yaml"), "mix"],
                cwd=workdir,
                env=ctx.reference_env if reference else None,
            )

        return prepare

    case = Case("mix", name, input_mb=INPUT_MB)
    case.impls["ours"] = Impl(make(ctx.ours, False), output_counts)
    if ctx.reference:
        case.impls["reference"] = Impl(make(ctx.reference, True), output_counts)
    return [case]
