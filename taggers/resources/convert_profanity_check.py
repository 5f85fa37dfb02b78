"""Convert the linear model of the PyPI package `alt-profanity-check` into `offensive_v1.bin` (run once).

Run it with the Python of a throwaway virtual environment that has the package (it pins an exact scikit-learn):

    python3 -m venv /tmp/apc && /tmp/apc/bin/pip install alt-profanity-check==1.9.1
    /tmp/apc/bin/python taggers/resources/convert_profanity_check.py taggers/resources/offensive_v1.bin

The package's model is a scikit-learn pipeline: `TfidfVectorizer` (lower-cased, tokens `(?u)\\b\\w\\w+\\b`, English
stop words, unigrams, smooth idf, l2 norm) then `CalibratedClassifierCV` (sigmoid calibration) over `LinearSVC`
members; its score is the mean over the members of `1 / (1 + exp(a * (w . x + c) + b))`. This script reads the
fitted numbers out of those objects and writes them in our own format, which `taggers/toxicity.py` evaluates
with numpy, so the toolkit needs neither scikit-learn nor joblib (nor unpickling) at run time.

File format, little-endian:

    magic    8 bytes  b"DOLMAOFF"
    version  u32      1
    terms    u32      vocabulary size V
    members  u32      calibrated members K
    body     u32      length of the zlib-compressed body
    sha256   32 bytes of the uncompressed body
    body     zlib:  u32 length + JSON metadata (source package, tokenizer settings),
                    f64[K] intercepts c, f64[K] sigmoid a, f64[K] sigmoid b, f64[V] idf, f64[K*V] weights w
                    (member-major), then the V terms in column order, UTF-8, joined by "\\n"

This file is not imported by the toolkit; it only needs numpy, scikit-learn and the package.
"""

from __future__ import annotations

import hashlib
import json
import struct
import sys
import zlib
from importlib import metadata

MAGIC = b"DOLMAOFF"
VERSION = 1
EXPECTED = {
    "analyzer": "word",
    "binary": False,
    "lowercase": True,
    "ngram_range": (1, 1),
    "norm": "l2",
    "preprocessor": None,
    "strip_accents": None,
    "sublinear_tf": False,
    "token_pattern": r"(?u)\b\w\w+\b",
    "tokenizer": None,
    "use_idf": True,
}


def main(out: str) -> None:
    import numpy as np
    from profanity_check import profanity_check as pc

    vectorizer, model = pc.vectorizer, pc.model
    params = vectorizer.get_params()
    for key, want in EXPECTED.items():
        if params[key] != want:
            sys.exit(f"vectorizer.{key} is {params[key]!r}, the evaluator implements {want!r}: not converted")
    if type(model).__name__ != "CalibratedClassifierCV" or model.method != "sigmoid":
        sys.exit(f"model is {type(model).__name__} ({getattr(model, 'method', '?')}), not sigmoid-calibrated")
    if list(model.classes_) != [0, 1]:
        sys.exit(f"model classes are {list(model.classes_)}, expected [0, 1] (1 = offensive)")

    vocab = vectorizer.vocabulary_
    terms = sorted(vocab, key=vocab.get)
    if [vocab[t] for t in terms] != list(range(len(terms))) or any("\n" in t for t in terms):
        sys.exit("vocabulary columns are not 0..V-1, or a term holds a newline")
    members = model.calibrated_classifiers_
    coef, intercept, sig_a, sig_b = [], [], [], []
    for member in members:
        est = member.estimator
        if type(est).__name__ != "LinearSVC" or est.coef_.shape != (1, len(terms)) or len(member.calibrators) != 1:
            sys.exit(f"unexpected member {type(est).__name__} {getattr(est, 'coef_', np.empty(0)).shape}")
        coef.append(np.asarray(est.coef_[0], dtype="<f8"))
        intercept.append(float(est.intercept_[0]))
        sig_a.append(float(member.calibrators[0].a_))
        sig_b.append(float(member.calibrators[0].b_))

    meta = {
        "source": f"alt-profanity-check {metadata.version('alt-profanity-check')}",
        "trained_with": f"scikit-learn {metadata.version('scikit-learn')}",
        "licence": "MIT (alt-profanity-check); see NOTICE.md",
        "token_pattern": params["token_pattern"],
        "lowercase": True,
        "norm": "l2",
        "positive_class": "offensive",
    }
    meta_bytes = json.dumps(meta, sort_keys=True).encode()
    body = b"".join(
        [
            struct.pack("<I", len(meta_bytes)),
            meta_bytes,
            np.asarray(intercept, dtype="<f8").tobytes(),
            np.asarray(sig_a, dtype="<f8").tobytes(),
            np.asarray(sig_b, dtype="<f8").tobytes(),
            np.asarray(vectorizer.idf_, dtype="<f8").tobytes(),
            np.concatenate(coef).tobytes(),
            "\n".join(terms).encode("utf-8"),
        ]
    )
    packed = zlib.compress(body, 9)
    header = MAGIC + struct.pack("<IIII", VERSION, len(terms), len(members), len(packed))
    with open(out, "wb") as fh:
        fh.write(header + hashlib.sha256(body).digest() + packed)
    print(f"{out}: {len(terms)} terms, {len(members)} members, {len(header) + 32 + len(packed)} bytes")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: convert_profanity_check.py OUTPUT")
    main(sys.argv[1])
