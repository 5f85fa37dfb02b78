"""MinHash parameters equal to datasketch's, computed without importing it: the permutation parameters of
`datasketch.MinHash(num_perm, seed, scheme)` and the bands x rows `datasketch.MinHashLSH(threshold, num_perm,
weights)` chooses. Importing datasketch pulls in scipy (its optimiser integrates with `scipy.integrate.quad`),
close to a second per run; these need numpy only, and tests/dolma/test_minhash_params.py holds them equal to
datasketch (imported there as the oracle).
"""

from __future__ import annotations

import functools
from typing import Literal

import numpy as np

from dolma.errors import ConfigError

SchemeName = Literal["affine32", "legacy"]

MAX_NUM_PERM = 1 << 16

_PRIME61 = (1 << 61) - 1
"""The Mersenne prime of the legacy scheme: `a` is drawn from [1, p), `b` from [0, p)."""


@functools.lru_cache(maxsize=64)
def permutations(num_perm: int, seed: int, scheme: SchemeName = "affine32") -> tuple[list[int], list[int]]:
    """The permutation parameters `(a, b)` of `datasketch.MinHash(num_perm, seed, scheme=scheme)`: the same draws
    from `numpy.random.RandomState(seed)`, in the same order."""
    gen = np.random.RandomState(seed)
    if scheme == "affine32":
        # a: odd 32-bit multipliers (2k + 1 for k < 2^31), then b: 32-bit offsets, each drawn as one array.
        a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32).astype(np.uint64) * 2 + 1
        b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
        return [int(x) for x in a], [int(x) for x in b]
    return _legacy_permutations(num_perm, seed)


def _legacy_permutations(num_perm: int, seed: int) -> tuple[list[int], list[int]]:
    """Legacy scheme: pairs (a in [1, p), b in [0, p)) drawn one scalar at a time, a then b. Each of those draws
    is one 64-bit word masked to 61 bits, redrawn while above its range, so the stream is read as one array of
    words; if any word would have been redrawn (probability about num_perm / 2^60), the scalar draws are replayed."""
    words = np.random.RandomState(seed).randint(0, 1 << 64, 2 * num_perm, dtype=np.uint64) & np.uint64(_PRIME61)
    a, b = words[0::2], words[1::2]
    if bool((a > _PRIME61 - 2).any() or (b > _PRIME61 - 1).any()):
        gen = np.random.RandomState(seed)
        pairs = [(gen.randint(1, _PRIME61, dtype=np.uint64), gen.randint(0, _PRIME61, dtype=np.uint64)) for _ in a]
        return [int(x) for x, _ in pairs], [int(y) for _, y in pairs]
    return [int(x) + 1 for x in a], [int(x) for x in b]


def lsh_params(threshold: float, num_perm: int = 128, weights: tuple[float, float] = (0.5, 0.5)) -> tuple[int, int]:
    """(bands, rows) that `datasketch.MinHashLSH(threshold, num_perm, weights)` chooses: of every b x r <=
    num_perm, the first (b, then r, ascending) minimising fp_weight * FP + fn_weight * FN. FP is the integral over
    [0, threshold] of P(s) = 1 - (1 - s^r)^b, the chance that documents of Jaccard similarity s share a band, and
    FN that of 1 - P over [threshold, 1]. Like datasketch, refuses fewer than two permutations or bands."""
    if not (0.0 < threshold < 1.0):
        raise ConfigError(f"minhash.threshold: must be strictly between 0 and 1, got {threshold}")
    if not 1 <= num_perm <= MAX_NUM_PERM:
        raise ConfigError(f"minhash.num_perm: must be between 1 and {MAX_NUM_PERM}, got {num_perm}")
    fp, fn = float(weights[0]), float(weights[1])
    if not (0.0 <= fp <= 1.0 and 0.0 <= fn <= 1.0 and fp + fn == 1.0):
        raise ConfigError(f"minhash.weights: two non-negative weights summing to 1, got {[fp, fn]}")
    return _lsh_params(float(threshold), int(num_perm), fp, fn)


@functools.lru_cache(maxsize=256)
def _lsh_params(threshold: float, num_perm: int, fp_weight: float, fn_weight: float) -> tuple[int, int]:
    if num_perm >= 2:
        if fp_weight == 0.0:
            bands, rows = _recall_only_bands(threshold, num_perm)
        else:
            bands, rows = _optimum(threshold, num_perm, fp_weight, fn_weight)
        if bands >= 2:
            return bands, rows
    raise ConfigError(
        f"minhash.threshold: datasketch chooses no usable bands for threshold {threshold} with num_perm "
        f"{num_perm} (it needs at least two bands): use more permutations, or give bands and rows"
    )


_MAX_NODES = 256
"""Gauss-Legendre nodes per interval. P is a polynomial of degree b x r <= num_perm, which n nodes integrate
exactly (up to rounding) when 2n - 1 >= num_perm: so exact up to num_perm 511."""


def _optimum(threshold: float, num_perm: int, fp_weight: float, fn_weight: float) -> tuple[int, int]:
    """The first (b, r) in datasketch's order with the least weighted error. Every pair is computed at once (in
    blocks of rows r), with one Gauss-Legendre rule on [0, threshold] and one on [threshold, 1]."""
    x, w = _legendre(min(num_perm // 2 + 1, _MAX_NODES))
    log_low = np.log(threshold * (x + 1) / 2)
    log_high = np.log(threshold + (1 - threshold) * (x + 1) / 2)
    w_low, w_high = w * threshold / 2, w * (1 - threshold) / 2
    # num_perm // k pairs have b = k, and as many have r = k. Pairs are computed by r (r ascending, then b) and
    # their errors stored in datasketch's order (b ascending, then r), where pair (b, r) is at starts[b - 1] + r - 1.
    counts = num_perm // np.arange(1, num_perm + 1)
    starts = np.cumsum(counts) - counts
    total = int(counts.sum())
    bounds = np.append(starts, total)  # rows r .. e - 1 are pairs bounds[r - 1] .. bounds[e - 1] - 1
    row = np.repeat(np.arange(1, num_perm + 1), counts)
    band = np.arange(total) - np.repeat(starts, counts) + 1
    error = np.empty(total)
    per_block = max(1, (1 << 18) // len(x))
    r = 1
    while r <= num_perm:
        end = min(num_perm + 1, max(r + 1, int(np.searchsorted(bounds, bounds[r - 1] + per_block, side="right"))))
        first, last = int(bounds[r - 1]), int(bounds[end - 1])
        rows = np.arange(r, end)[:, None]
        # log (1 - s^r) at every node, once per r; times b: log of the chance that no band matches at similarity s.
        # Logs are floored at -600: below that a value counts as 0, and floats stay clear of slow subnormals.
        no_low = np.log1p(-np.exp(np.maximum(rows * log_low, -600.0)))
        no_high = np.log1p(-np.exp(np.maximum(rows * log_high, -600.0)))
        b, at = band[first:last, None], row[first:last] - r
        miss_low = np.maximum(b * no_low[at], -600.0)
        miss_high = np.maximum(b * no_high[at], -600.0)
        false_pos = -np.expm1(miss_low) @ w_low  # expm1: 1 - (1 - s^r)^b stays exact when tiny
        false_neg = np.exp(miss_high) @ w_high
        error[starts[band[first:last] - 1] + row[first:last] - 1] = false_pos * fp_weight + false_neg * fn_weight
        r = end
    best = int(np.argmin(error))  # the first of equal minima, as datasketch's strict "<"
    b_best = int(np.searchsorted(starts, best, side="right"))
    return b_best, best - int(starts[b_best - 1]) + 1


@functools.lru_cache(maxsize=8)
def _legendre(nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights on [-1, 1] (cached: numpy computes them by an eigenvalue problem)."""
    return np.polynomial.legendre.leggauss(nodes)


_KRONROD21_OUTER = 0.995657163025808080735527280689003
"""The outermost abscissa of the 21-point Gauss-Kronrod rule on [-1, 1] (Piessens et al., QUADPACK): the point
nearest an end where `scipy.integrate.quad` first evaluates an integrand."""


def _recall_only_bands(threshold: float, num_perm: int) -> tuple[int, int]:
    """The choice when false positives weigh nothing. Exactly, (num_perm, 1) is the optimum: every other pair's
    (1 - s^r)^b is pointwise at least (1 - s)^num_perm. But datasketch integrates the float expression
    1 - (1 - (1 - s)^b) with `quad`, and that is 0 wherever (1 - s)^b is below half a unit in the last place of 1.
    If it is 0 at quad's first node nearest the threshold (the integrand falls with s), quad returns exactly 0 for
    that b and every larger one, so datasketch keeps the first such b: no earlier pair, positive there, ties it.
    Otherwise it keeps (num_perm, 1); that is certain while FN is far above float resolution, and held in every
    case checked where FN is only a few rounding steps (tests/dolma/test_minhash_params.py)."""
    center, half = 0.5 * (threshold + 1.0), 0.5 * (1.0 - threshold)
    first_node = center - half * _KRONROD21_OUTER
    for b in range(1, num_perm + 1):
        if 1 - (1 - (1 - first_node) ** float(b)) == 0.0:
            return b, 1
    return num_perm, 1
