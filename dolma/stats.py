"""The engine of `dolma stat`: mergeable per-file summaries of attribute span scores and lengths.

Every number is merged exactly, whatever the number of processes or Spark executors: counts and histogram bins
are integers added up; sums are kept as exact rationals (each float is a dyadic fraction) and rounded once at the
end; min / max are exact; quantiles come from a DDSketch (the `ddsketch` library's logarithmic mapping), whose
buckets are integer counts too, so merging them is exact and order-free, and each quantile it returns is within
`RELATIVE_ACCURACY` (relative) of the true order statistic.

Histograms need the global range before counting, so a run makes two passes: pass 1 reads each file once and
keeps count / sum / min / max / sketch per name plus the file's distinct values with their counts, the driver
chooses the bin edges, pass 2 counts each file's distinct values into them (see dolma/commands/stat.py).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from fractions import Fraction
from itertools import chain
from typing import Any

import msgspec
import numpy as np
from ddsketch import DDSketch
from ddsketch.mapping import LogarithmicMapping

from dolma.documents import BadLine, FieldRule, ReadStats, read_records

RELATIVE_ACCURACY = 0.005
"""Each reported quantile is within 0.5% (relative) of the exact order statistic at rank floor(q * (n - 1))."""

QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
KINDS = ("score", "length")
_MAPPING = LogarithmicMapping(RELATIVE_ACCURACY)


Span = tuple[float, float, float]
_ZERO: Span = (0.0, 0.0, 0.0)


class _Row(msgspec.Struct):
    attributes: dict[str, list[Span]]


class _AnyRow(msgspec.Struct):
    attributes: Any = None


_row_decoder = msgspec.json.Decoder(_Row)
_any_decoder = msgspec.json.Decoder(_AnyRow)
ATTRIBUTE_FIELDS: tuple[FieldRule, ...] = (("attributes", (dict,), True),)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _explain(line: bytes) -> BadLine:
    """Which field of a row that is valid JSON is not `{"attributes": {key: [[start, end, score], ...]}}`."""
    attributes = _any_decoder.decode(line).attributes
    if not isinstance(attributes, dict):
        return BadLine("missing required field" if attributes is None else "expected an object", "attributes")
    for key, spans in attributes.items():
        if not isinstance(spans, list):
            return BadLine("expected an array of [start, end, score] spans", f"attributes.{key}")
        for idx, span in enumerate(spans):
            if not (isinstance(span, list) and len(span) == 3 and all(_is_number(x) for x in span)):
                return BadLine("expected a [start, end, score] span of three numbers", f"attributes.{key}[{idx}]")
    return BadLine("not a valid attribute row", "attributes")


def _decode(line: bytes) -> dict[str, list[Span]]:
    """The `attributes` of a row (typed and checked by msgspec in C; explained in our words when refused)."""
    try:
        return _row_decoder.decode(line).attributes
    except msgspec.ValidationError:
        raise _explain(line) from None


def read_values(
    path: str, regex: str | None, skip_bad_lines: bool, stats: ReadStats
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{attribute key: (scores, lengths)} of one attribute file, for keys matching `regex` (re.search).

    A key present with an empty list counts as one span of score 0 and length 0, as the reference's stat does.
    """
    pattern = re.compile(regex) if regex else None
    keep: dict[str, bool] = {}
    spans_of: dict[str, list[Span]] = {}
    for _, attributes, _ in read_records(path, _decode, ATTRIBUTE_FIELDS, skip_bad_lines=skip_bad_lines, stats=stats):
        if attributes is None:
            continue
        for key, spans in attributes.items():
            found = spans_of.get(key)
            if found is None:
                wanted = keep.get(key)
                if wanted is None:
                    wanted = keep[key] = pattern is None or pattern.search(key) is not None
                if not wanted:
                    continue
                found = spans_of[key] = []
            if spans:
                found.extend(spans)
            else:
                found.append(_ZERO)
    values = {}
    for key, spans in spans_of.items():
        flat = np.fromiter(chain.from_iterable(spans), dtype=np.float64, count=3 * len(spans))
        values[key] = (flat[2::3].copy(), flat[1::3] - flat[0::3])
    return values


def named_values(values: dict[str, tuple[np.ndarray, np.ndarray]]) -> Iterator[tuple[str, np.ndarray]]:
    """(`<key>/score`, scores), (`<key>/length`, lengths) per key: the names of the reference's summaries."""
    for key, pair in values.items():
        for kind, array in zip(KINDS, pair):
            yield f"{key}/{kind}", array


# ----------------------------------------------------------------------------------------------------------
# Exact sums
# ----------------------------------------------------------------------------------------------------------


def exact_sum(values: np.ndarray) -> Fraction:
    """The exact sum of float64 values (no rounding): mantissas are added as integers, one exponent at a time."""
    if not values.size:
        return Fraction(0)
    mantissa, exponent = np.frexp(values)
    ints = (mantissa * float(1 << 53)).astype(np.int64)  # exact: the 53-bit mantissa as an integer
    order = np.argsort(exponent, kind="stable")
    ints, exponent = ints[order], exponent[order]
    starts = np.flatnonzero(np.r_[True, exponent[1:] != exponent[:-1]])
    # split each mantissa so that no int64 partial sum can overflow (2**27 * 2**36 values)
    high = np.add.reduceat(ints >> 26, starts)
    low = np.add.reduceat(ints & ((1 << 26) - 1), starts)
    total = Fraction(0)
    for hi, lo, exp in zip(high.tolist(), low.tolist(), exponent[starts].tolist()):
        total += Fraction((hi << 26) + lo) * Fraction(2) ** (exp - 53)
    return total


# ----------------------------------------------------------------------------------------------------------
# Partial summaries (pass 1) and their merge
# ----------------------------------------------------------------------------------------------------------


class Partial(msgspec.Struct):
    """What one file (or a merge of files) says about one name. Every field merges exactly."""

    count: int
    sum: str  # an exact rational "numerator/denominator"
    min: float
    max: float
    distinct: list[float] | None  # sorted distinct values while there are at most `bins` of them, else None
    positive: dict[int, int]  # DDSketch bucket key -> count, for values > 0
    negative: dict[int, int]  # the same for -value, values < 0
    zeros: int


def _bucket_counts(values: np.ndarray) -> dict[int, int]:
    """DDSketch bucket key -> count of positive values: the mapping's key, ceil(log_gamma(v)), for all at once."""
    if not values.size:
        return {}
    keys = np.ceil(np.log(values) / math.log(_MAPPING.gamma)).astype(np.int64)
    uniq, counts = np.unique(keys, return_counts=True)
    return dict(zip(uniq.tolist(), counts.tolist()))


class Distinct(msgspec.Struct):
    """A file's distinct values of one name and how often each occurs (raw little-endian float64 / int64)."""

    values: bytes
    counts: bytes

    @classmethod
    def of(cls, values: np.ndarray) -> Distinct:
        uniq, counts = np.unique(values, return_counts=True)
        return cls(uniq.astype("<f8").tobytes(), counts.astype("<i8").tobytes())

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return np.frombuffer(self.values, dtype="<f8"), np.frombuffer(self.counts, dtype="<i8")


def summarize(values: np.ndarray, distinct: Distinct, bins: int) -> Partial:
    uniq, _ = distinct.arrays()
    tiny = _MAPPING.min_possible
    return Partial(
        count=int(values.size),
        sum=str(exact_sum(values)),
        min=float(uniq[0]),
        max=float(uniq[-1]),
        distinct=uniq.tolist() if uniq.size <= bins else None,
        positive=_bucket_counts(values[values > tiny]),
        negative=_bucket_counts(-values[values < -tiny]),
        zeros=int(np.count_nonzero((values <= tiny) & (values >= -tiny))),
    )


def _add_counts(into: dict[int, int], other: dict[int, int]) -> None:
    for key, count in other.items():
        into[key] = into.get(key, 0) + count


def merge(into: Partial, other: Partial, bins: int) -> None:
    into.count += other.count
    into.sum = str(Fraction(into.sum) + Fraction(other.sum))
    into.min = min(into.min, other.min)
    into.max = max(into.max, other.max)
    if into.distinct is None or other.distinct is None:
        into.distinct = None
    else:
        both = sorted(set(into.distinct) | set(other.distinct))
        into.distinct = both if len(both) <= bins else None
    _add_counts(into.positive, other.positive)
    _add_counts(into.negative, other.negative)
    into.zeros += other.zeros


def quantiles(partial: Partial) -> dict[str, float]:
    """p1 ... p99 from the merged buckets, through the library's DDSketch (bucket values map to their keys)."""
    sketch = DDSketch(RELATIVE_ACCURACY)
    for key, count in sorted(partial.negative.items()):
        sketch.add(-_MAPPING.value(key), count)
    if partial.zeros:
        sketch.add(0.0, partial.zeros)
    for key, count in sorted(partial.positive.items()):
        sketch.add(_MAPPING.value(key), count)
    found = {}
    for q in QUANTILES:
        value = sketch.get_quantile_value(q)
        # a bucket's value may fall outside the data's exact range by up to the relative accuracy: clamp it
        found[f"p{round(q * 100)}"] = min(max(float(value), partial.min), partial.max) if value is not None else 0.0
    return found


# ----------------------------------------------------------------------------------------------------------
# Bin edges (chosen on the driver from the merged pass 1) and counts (pass 2)
# ----------------------------------------------------------------------------------------------------------


def top_edge(value: float) -> float:
    """The edge just above the largest of few distinct values: value + 2**e * 1e-5 with e its binary exponent.

    The reference closes its histograms of few distinct values this way; the same formula keeps its edges.
    """
    _, exp = math.frexp(abs(value))
    return value + math.ldexp(1e-5, exp)


def bin_edges(partial: Partial, bins: int) -> list[float]:
    """The reference's choice: one bin per distinct value when there are at most `bins` of them (then an edge
    above the largest), else `bins` equal-width bins from min to max (numpy.histogram's edges)."""
    if partial.distinct is not None:
        return [*partial.distinct, top_edge(partial.distinct[-1])]
    return np.linspace(partial.min, partial.max, bins + 1).tolist()


def histogram(distinct: Distinct, edges: np.ndarray) -> np.ndarray:
    """Counts of the values in the bins of `edges`: [a, b) bins, the last one closed, as numpy.histogram."""
    values, counts = distinct.arrays()
    nbins = len(edges) - 1
    idx = np.searchsorted(edges, values, side="right") - 1
    idx[values == edges[-1]] = nbins - 1
    inside = (idx >= 0) & (idx < nbins)
    return np.bincount(idx[inside], weights=counts[inside], minlength=nbins)[:nbins].astype(np.int64)
