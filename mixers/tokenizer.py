"""Tokenizers for `dolma tokens`: HuggingFace `tokenizer.json` files and tiktoken encodings, all offline.

Longer than 400 lines because the fast byte-level BPE is one piece with the wrappers and offline loading it serves.

Both kinds are wrapped in one small interface (`encode_batch`, `decode`, `vocab_size`, `token_to_id`) so the
shard writer does not care which library does the work. Batch encoding runs in the libraries' Rust threads.

A HuggingFace tokenizer is a local (or s3://) `tokenizer.json`, a shipped name, or a Hub name found in the Hugging
Face cache (downloaded there only when the hub may be used); `dolma.tokenizer_files` resolves names for this and the
taggers. The default is the GPT-NeoX-OLMo tokenizer shipped in `dolma/resources/tokenizers`.
tiktoken normally fetches its encoding files from the internet on first use; here `tiktoken:<name>` works when
the file is already in tiktoken's cache (`$TIKTOKEN_CACHE_DIR`), and `tiktoken:<name>=<path>` reads the ranks
from a local `.tiktoken` file.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from abc import ABC, abstractmethod
from pathlib import Path

from dolma import io
from dolma.errors import ConfigError
from dolma.tokenizer_files import (
    OLMO_TOKENIZER,
    OLMO_TOKENIZER_FILE,
    SHIPPED_TOKENIZERS,
    is_hub_name,
    resolve_hub_tokenizer,
)

DEFAULT_TOKENIZER_FILE = OLMO_TOKENIZER_FILE
DEFAULT_TOKENIZER = OLMO_TOKENIZER

log = logging.getLogger("dolma")

# Names users of the reference toolkit write (HuggingFace Hub ids) that map to a file shipped here.
SHIPPED: dict[str, Path] = {
    **SHIPPED_TOKENIZERS,
    "default": DEFAULT_TOKENIZER_FILE,
}

# Special token ids of the shipped default tokenizer (what `make demo` and configs without ids rely on).
DEFAULT_SPECIAL_IDS = {"eos_token_id": 50279, "pad_token_id": 1, "bos_token_id": None}


class Tokenizer(ABC):
    """Text <-> token ids. Implementations must be picklable (they are rebuilt from `name_or_path`)."""

    name_or_path: str

    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """Number of ids the tokenizer can produce (including added special tokens)."""

    @abstractmethod
    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each text, without any special tokens added around it."""

    @abstractmethod
    def decode(self, ids: list[int]) -> str:
        """Text of ids (special tokens rendered as their text)."""

    @abstractmethod
    def token_to_id(self, token: str) -> int | None: ...

    def normalize(self, text: str) -> str:
        """The text as the tokenizer sees it after normalization (what decoding gives back)."""
        return text


class HFTokenizer(Tokenizer):
    """A HuggingFace `tokenizers` tokenizer loaded from a tokenizer.json file (local or s3://)."""

    def __init__(self, name_or_path: str, path: str, encode_special_tokens: bool = False, fast: bool = True):
        self.name_or_path = name_or_path
        self.path = path
        self.encode_special_tokens = encode_special_tokens
        self.fast = fast
        self._tok, self._fast = self._load()

    def _load(self):
        import json

        from tokenizers import Tokenizer as _HF

        try:
            text = io.read_text(self.path)
            tok = _HF.from_str(text)
        except Exception as exc:  # the library raises plain Exceptions for malformed files
            raise ConfigError(f"tokenizer.name_or_path: cannot load tokenizer file {self.path}: {exc}") from None
        if self.encode_special_tokens:
            tok.encode_special_tokens = True
        fast = FastByteLevelBPE.build(json.loads(text)) if self.fast else None
        if fast is not None:
            expected = [enc.ids for enc in tok.encode_batch(SELF_CHECK_TEXTS, add_special_tokens=False)]
            if [fast.encode(t, self.encode_special_tokens) for t in SELF_CHECK_TEXTS] != expected:
                log.warning("%s: the fast byte-level path disagrees with tokenizers; using tokenizers", self.path)
                fast = None
        return tok, fast

    @property
    def uses_fast_path(self) -> bool:
        return self._fast is not None

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("_tok", "_fast")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._tok, self._fast = self._load()

    @property
    def vocab_size(self) -> int:
        return int(self._tok.get_vocab_size(with_added_tokens=True))

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        if self._fast is not None:
            return [self._fast.encode(text, self.encode_special_tokens) for text in texts]
        encode = getattr(self._tok, "encode_batch_fast", None) or self._tok.encode_batch
        return [enc.ids for enc in encode(texts, add_special_tokens=False)]

    def decode(self, ids: list[int]) -> str:
        return self._tok.decode(ids, skip_special_tokens=False)

    def token_to_id(self, token: str) -> int | None:
        return self._tok.token_to_id(token)

    def normalize(self, text: str) -> str:
        normalizer = self._tok.normalizer
        return normalizer.normalize_str(text) if normalizer is not None else text


# The GPT-2 / GPT-NeoX byte-level pre-tokenization pattern (what HF's ByteLevel pre-tokenizer splits on).
BYTE_LEVEL_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

SELF_CHECK_TEXTS = [
    "Hello world. It's a test; we'll see   what    happens\n\n\tindented\n        code()",
    "Ünïcödé façade — naïve café, 東京は日本の首都です。 🙂🚀 emoji, cafe\u0301",
    "numbers 1234567 3.14159, x\u00a0\u00a0y, tabs\t\tand\u2003spaces\u2028end <|endoftext|> after",
    "   leading spaces" + " " * 30 + "trailing   ",
]


def _byte_decoder() -> dict[str, int]:
    """The inverse of the byte-level alphabet (each byte shown as a printable character) of GPT-2 BPE."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("\u00a1"), ord("\u00ac") + 1)]
    printable += list(range(ord("\u00ae"), ord("\u00ff") + 1))
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars)}


class FastByteLevelBPE:
    """Byte-level BPE encoding of a HuggingFace tokenizer.json, run by tiktoken's Rust core (several times
    faster than `tokenizers` for the same ids).

    Built only for tokenizers where this is exact: a BPE model without dropout, prefixes or byte fallback; a
    ByteLevel pre-tokenizer (regex on, no prefix space); an NFC or no normalizer; added tokens matched
    literally (leftmost-longest, as HF does); merges whose products have increasing ids (so tiktoken's
    rank order is the merge order). `build` returns None otherwise, and the caller keeps HF tokenizers.
    """

    def __init__(self, ranks: dict[bytes, int], added: dict[str, int], special: set[str], nfc: bool):
        import re

        import tiktoken

        self.added = added
        self.special = special
        self.nfc = nfc
        self._enc = tiktoken.Encoding(
            "dolma-byte-level-bpe", pat_str=BYTE_LEVEL_PATTERN, mergeable_ranks=ranks, special_tokens={}
        )
        self._split_all = self._pattern(re, list(added))
        self._split_plain = self._pattern(re, [t for t in added if t not in special])

    @staticmethod
    def _pattern(re, tokens: list[str]):
        """A regex that finds added tokens leftmost-longest, as HF's matcher does.

        Literals are tried longest first. Runs of one repeated character with every length from a to b
        (GPT-NeoX's space tokens) become one greedy `c{a,b}` when no other token starts with that character:
        the same matches, far faster than 20+ alternatives at every position.
        """
        if not tokens:
            return None
        by_char: dict[str, list[str]] = {}
        for tok in tokens:
            by_char.setdefault(tok[0], []).append(tok)
        runs: list[str] = []
        literals: list[str] = []
        for char, group in by_char.items():
            lengths = sorted(len(t) for t in group)
            uniform = all(set(t) == {char} for t in group)
            if uniform and len(group) > 2 and lengths == list(range(lengths[0], lengths[-1] + 1)):
                runs.append(f"{re.escape(char)}{{{lengths[0]},{lengths[-1]}}}")
            else:
                literals.extend(group)
        parts = [re.escape(t) for t in sorted(literals, key=len, reverse=True)] + runs
        return re.compile("|".join(parts))

    @classmethod
    def build(cls, config: dict) -> FastByteLevelBPE | None:
        model = config.get("model") or {}
        if model.get("type") != "BPE" or model.get("dropout") or model.get("byte_fallback"):
            return None
        if model.get("continuing_subword_prefix") or model.get("end_of_word_suffix"):
            return None
        pre = config.get("pre_tokenizer") or {}
        if pre.get("type") != "ByteLevel" or pre.get("add_prefix_space") or not pre.get("use_regex", True):
            return None
        normalizer = config.get("normalizer")
        if normalizer is not None and normalizer.get("type") != "NFC":
            return None
        import unicodedata

        added_tokens = config.get("added_tokens") or []
        for tok in added_tokens:
            if tok.get("lstrip") or tok.get("rstrip") or tok.get("single_word"):
                return None
            if unicodedata.normalize("NFC", tok["content"]) != tok["content"]:
                return None
        added = {tok["content"]: int(tok["id"]) for tok in added_tokens}
        special = {tok["content"] for tok in added_tokens if tok.get("special")}
        vocab: dict[str, int] = model.get("vocab") or {}
        decoder = _byte_decoder()
        ranks: dict[bytes, int] = {}
        for token, idx in vocab.items():
            if token in added:
                continue
            try:
                ranks[bytes(decoder[ch] for ch in token)] = int(idx)
            except KeyError:
                return None
        last = -1
        for merge in model.get("merges") or []:
            left, right = merge.split(" ", 1) if isinstance(merge, str) else merge
            product = vocab.get(left + right)
            if product is None or product <= last:
                return None
            last = product
        return cls(ranks, added, special, normalizer is not None)

    def encode(self, text: str, encode_special_tokens: bool) -> list[int]:
        import unicodedata

        if self.nfc:
            text = unicodedata.normalize("NFC", text)
        pattern = self._split_plain if encode_special_tokens else self._split_all
        if pattern is None:
            return self._enc.encode_ordinary(text)
        ids: list[int] = []
        pos = 0
        for match in pattern.finditer(text):
            if match.start() > pos:
                ids.extend(self._enc.encode_ordinary(text[pos : match.start()]))
            ids.append(self.added[match.group()])
            pos = match.end()
        if pos < len(text):
            ids.extend(self._enc.encode_ordinary(text[pos:]))
        return ids


_tiktoken_lock = threading.Lock()


class TiktokenTokenizer(Tokenizer):
    """A tiktoken encoding: `tiktoken:<name>` (from tiktoken's cache) or `tiktoken:<name>=<local ranks file>`."""

    def __init__(self, name_or_path: str, encode_special_tokens: bool = False):
        self.name_or_path = name_or_path
        self.encode_special_tokens = encode_special_tokens
        self._enc = self._load()

    def _load(self):
        try:
            import tiktoken
        except ImportError:  # pragma: no cover - tiktoken is a dependency
            raise ConfigError("tokenizer.name_or_path: tiktoken encodings need the tiktoken package") from None
        spec = self.name_or_path[len("tiktoken:") :]
        name, _, ranks_path = spec.partition("=")
        if ranks_path:
            return _tiktoken_from_file(name, ranks_path)
        try:
            with _tiktoken_offline():
                return tiktoken.get_encoding(name)
        except ValueError as exc:
            raise ConfigError(f"tokenizer.name_or_path: unknown tiktoken encoding '{name}': {exc}") from None
        except Exception as exc:
            cache = os.environ.get("TIKTOKEN_CACHE_DIR", "(unset)")
            raise ConfigError(
                f"tokenizer.name_or_path: tiktoken encoding '{name}' is not available offline "
                f"(TIKTOKEN_CACHE_DIR={cache}; tiktoken would download it): give a local file as "
                f"'tiktoken:{name}=/path/to/{name}.tiktoken' ({type(exc).__name__}: {exc})"
            ) from None

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_enc"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._enc = self._load()

    @property
    def vocab_size(self) -> int:
        return int(self._enc.n_vocab)

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        if self.encode_special_tokens:
            # Special-token text is ordinary text: split it like any other characters.
            return self._enc.encode_ordinary_batch(texts)
        return self._enc.encode_batch(texts, allowed_special="all")

    def decode(self, ids: list[int]) -> str:
        return self._enc.decode(ids)

    def token_to_id(self, token: str) -> int | None:
        special = self._enc._special_tokens
        if token in special:
            return int(special[token])
        try:
            return int(self._enc.encode_single_token(token))
        except KeyError:
            return None


class _OfflineError(Exception):
    pass


@contextlib.contextmanager
def _tiktoken_offline():
    """Let tiktoken read its cache and local files but refuse to download anything."""
    from tiktoken import load as tk_load

    def refuse(blobpath: str) -> bytes:
        if "://" in blobpath:
            raise _OfflineError(f"not in the cache and downloads are disabled: {blobpath}")
        with open(blobpath, "rb") as fh:
            return fh.read()

    with _tiktoken_lock:
        saved = tk_load.read_file
        tk_load.read_file = refuse
        try:
            yield
        finally:
            tk_load.read_file = saved


def _tiktoken_from_file(name: str, ranks_path: str):
    """Build encoding `name` (its split pattern and special tokens) with ranks read from a local file."""
    import tiktoken
    from tiktoken import load as tk_load
    from tiktoken_ext import openai_public

    constructor = openai_public.ENCODING_CONSTRUCTORS.get(name)
    if constructor is None:
        known = ", ".join(sorted(openai_public.ENCODING_CONSTRUCTORS))
        raise ConfigError(f"tokenizer.name_or_path: unknown tiktoken encoding '{name}' (known: {known})")
    local = io.normalize(ranks_path)
    if not io.exists(local):
        raise ConfigError(f"tokenizer.name_or_path: tiktoken ranks file {local} not found")
    ranks = tk_load.load_tiktoken_bpe(local)
    # The constructors load their ranks from a URL; hand them the local ranks instead (no network).
    with _tiktoken_lock:
        saved = openai_public.load_tiktoken_bpe
        openai_public.load_tiktoken_bpe = lambda *_args, **_kwargs: ranks
        try:
            params = constructor()
        finally:
            openai_public.load_tiktoken_bpe = saved
    params.pop("explicit_n_vocab", None)
    return tiktoken.Encoding(**params)


def resolve_path(name_or_path: str) -> str:
    """The tokenizer.json location for a name or path: shipped names first, then local or s3:// paths, then a
    Hugging Face Hub name through the Hugging Face cache (or the hub when it may be used; `dolma.tokenizer_files`)."""
    shipped = SHIPPED.get(name_or_path)
    if shipped is not None:
        return str(shipped)
    path = io.normalize(name_or_path)
    if io.is_s3(path) or os.path.isfile(path):
        return path
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, "tokenizer.json")):
        return os.path.join(path, "tokenizer.json")
    if is_hub_name(name_or_path) and not os.path.exists(path):
        return resolve_hub_tokenizer(name_or_path)
    raise ConfigError(
        f"tokenizer.name_or_path: '{name_or_path}' is neither a tokenizer.json file, a directory holding one, "
        f"a shipped tokenizer ({', '.join(SHIPPED)}) nor a Hugging Face Hub name"
    )


def load_tokenizer(name_or_path: str | None, encode_special_tokens: bool = False, fast: bool = True) -> Tokenizer:
    """A tokenizer from a tokenizer.json path, a shipped name, or `tiktoken:<name>[=<ranks file>]`.

    With `fast`, byte-level BPE tokenizer.json files are encoded by tiktoken's core when that gives the same ids.
    """
    name_or_path = name_or_path or DEFAULT_TOKENIZER
    if name_or_path.startswith("tiktoken:"):
        return TiktokenTokenizer(name_or_path, encode_special_tokens)
    return HFTokenizer(name_or_path, resolve_path(name_or_path), encode_special_tokens, fast)


def is_default(name_or_path: str | None) -> bool:
    if not name_or_path:
        return True
    if SHIPPED.get(name_or_path) == DEFAULT_TOKENIZER_FILE:
        return True
    return not name_or_path.startswith("tiktoken:") and io.normalize(name_or_path) == str(DEFAULT_TOKENIZER_FILE)
