"""What the tokenizer taggers' tests share (tests/taggers/test_tokenizer_taggers.py and the reference test
tests/compat/test_reference_tokenizer_taggers.py): the taggers' names and a Hugging Face cache holding
tokenizer files."""

from __future__ import annotations

import shutil
from pathlib import Path

TOKENIZER_TAGGERS = [
    "dolma_v1_tokenizer",
    "dolma_v2_tokenizer",
    "olmo_pretokenizer_v1",
    "olmo_pretokenizer_with_paragraphs_v1",
    "tokenizer_repetitions_v1",
    "tokenizer_repetitions_v2r2",
    "paragraph_tokenizer_repetitions_v1",
    "tokenizers_AI2_OLMo_v1",
    "tokenizers_EleutherAI_GPT_NeoX_20B",
]


def fill_hf_cache(
    hub: Path, files: dict[str, Path], revision: str = "0123456789abcdef0123456789abcdef01234567", ref_end: str = ""
) -> Path:
    """`hub` as a Hugging Face hub cache (huggingface_hub's layout: models--<org>--<name>, refs/main naming the
    snapshot `revision`) holding `files[repo]` as each repo's tokenizer.json. `ref_end` follows the revision in
    refs/main (huggingface_hub writes nothing there; a newline checks that our lookup tolerates one)."""
    for repo, source in files.items():
        root = hub / ("models--" + repo.replace("/", "--"))
        (root / "refs").mkdir(parents=True, exist_ok=True)
        (root / "refs" / "main").write_text(revision + ref_end)
        snapshot = root / "snapshots" / revision
        snapshot.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, snapshot / "tokenizer.json")
    return hub
