"""`dedupe.minhash` on Spark (`executor: spark`): the local run's clusters, computed distributed.

1. sign (one task per documents file, S3 or local, read on the executor): per document its ordinal inside the
   file, its line, its signature and band keys (and its shingle set with `verify: exact`), kept (persisted) on
   the executors; only the number of documents per file reaches the driver, to turn (file, index) into the
   global ordinal of the stable order;
2. buckets: `(band key, ordinal)` records shuffled by key (hash partitioning); each bucket joins every member
   to its first (smallest) ordinal: the edges the local engine unites without verification. With `verify:
   signature | exact` each member's sketch (signature or shingle set) travels with it, and the bucket's edges
   are verified on the executor by the local engine's rule, a function of the bucket's members alone: in
   ordinal order, a member joins the first of the bucket's anchors (its first `MAX_ANCHORS` members) before it
   whose similarity reaches the threshold (see rust_ext/core/src/minhash/cluster.rs);
3. connected components by alternating large-star / small-star rounds (Kiveris et al., 2014) on the edge RDD
   until a round changes nothing; every node ends pointing at its component's smallest ordinal, the keeper;
4. similarity to the keeper from the two sketches (a join), then per file, on the executors, the attribute
   file written by the same function as the local run (`minhash_attributes.write_marks`): byte-identical.

Nothing proportional to the corpus is collected on the driver.
"""

from __future__ import annotations

import logging
import operator
import time
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from dolma import io
from dolma import minhash as mh
from dolma.documents import ReadStats
from dolma.executors.base import Summary, Unit, UnitFailure, UnitStats

log = logging.getLogger("dolma")


class SignFiles:
    """Stage 1: (file index, path) -> (file index, (ordinal in file, line, signature bytes, band keys, keyed,
    shingle set bytes or None)); the sets only with `verify: exact`."""

    def __init__(self, params: mh.MinHashParams, key: tuple, skip_bad_lines: bool, s3: Any):
        self.params = params
        self.signer = mh.signer(params)  # built on the driver: executors get its engine JSON, run no optimiser
        self.key = key
        self.skip_bad_lines = skip_bad_lines
        self.s3 = s3

    def __call__(self, files: Iterable[tuple[int, str]]) -> Iterator[tuple[int, tuple]]:
        io.configure_s3(self.s3)
        signer = self.signer
        for file_index, path in files:
            stats = ReadStats()
            local = 0
            for lines, texts, _, _ in mh._batches(path, self.skip_bad_lines, stats, 8 << 20, tuple(self.key)):
                values, counts = signer.signatures(texts, threads=1)
                sigs = np.frombuffer(values, dtype="<u4").reshape(len(texts), self.params.num_perm)
                keys = np.frombuffer(signer.band_keys(values), dtype="<u8").reshape(len(texts), -1)
                sets = signer.shingle_sets(texts, threads=1) if self.params.verify == "exact" else [None] * len(texts)
                for row, line in enumerate(lines):
                    yield (
                        file_index,
                        (local, line, sigs[row].tobytes(), keys[row].tolist(), counts[row] > 0, sets[row]),
                    )
                    local += 1


def _bucket_edges(members: Iterable[int]) -> list[tuple[int, int]]:
    ordered = sorted(set(members))
    return [(m, ordered[0]) for m in ordered[1:]]


class VerifiedEdges:
    """Stage 2 with verification: a bucket's (ordinal, sketch) members -> its edges (member, anchor), by the
    local engine's rule: in ordinal order, each member is compared with the anchors before it (the bucket's first
    `MAX_ANCHORS` members) and joins the first whose similarity reaches the threshold."""

    def __init__(self, threshold: float, exact: bool):
        self.threshold = threshold
        self.exact = exact

    def __call__(self, bucket: tuple[int, Iterable[tuple[int, bytes]]]) -> list[tuple[int, int]]:
        members = sorted(dict(bucket[1]).items())  # an ordinal twice in one bucket counts once
        anchors: list[tuple[int, bytes]] = []
        edges = []
        for ordinal, sketch in members:
            for anchor, anchor_sketch in anchors:
                if _similarity(sketch, anchor_sketch, self.exact) >= self.threshold:
                    edges.append((ordinal, anchor))
                    break
            if len(anchors) < mh.MAX_ANCHORS:
                anchors.append((ordinal, sketch))
        return edges


def _large_star(item: tuple[int, Iterable[int]]) -> list[tuple[int, int]]:
    node, neighbours = item
    around = set(neighbours)
    low = min(around | {node})
    return [(v, low) for v in around if v > node]


def _small_star(item: tuple[int, Iterable[int]]) -> list[tuple[int, int]]:
    node, neighbours = item
    around = set(neighbours)
    low = min(around | {node})
    return [(v, low) for v in around | {node} if v != low]


def _differ(new: Any, old: Any) -> bool:
    """Whether two RDDs of edges differ: one shuffle of both (into `new`'s partitions) and one job, counting the
    edges found on one side only. (Two `subtract`s shuffled both sets twice, and `isEmpty` of a converged round
    ran a job per batch of partitions: a round of a small graph took twice as long on local Spark.)"""
    sides = new.map(lambda e: (e, 1)).union(old.map(lambda e: (e, 2)))
    return sides.reduceByKey(operator.or_, new.getNumPartitions()).filter(lambda kv: kv[1] != 3).count() > 0


def components(edges: Any) -> Any:
    """(node, smallest node of its component) for every node on an edge; distributed, never collected."""
    edges = edges.distinct().cache()
    while True:
        large = edges.flatMap(lambda e: [e, (e[1], e[0])]).groupByKey().flatMap(_large_star).distinct()
        small = large.map(lambda e: (max(e), min(e))).groupByKey().flatMap(_small_star).distinct().cache()
        changed = _differ(small, edges)
        edges.unpersist()
        edges = small
        if not changed:
            break
    # After convergence every edge is (node, its component's minimum); the minimum itself is its own root.
    return edges.union(edges.map(lambda e: (e[1], e[1]))).distinct()


def _similarity(a: bytes, b: bytes, exact: bool) -> float:
    """The engine's similarity (f64, same arithmetic): shingle-set Jaccard (`exact`) or the share of equal
    signature values."""
    if exact:
        x, y = np.frombuffer(a, dtype="<u8"), np.frombuffer(b, dtype="<u8")
        if not len(x) and not len(y):
            return 0.0
        common = int(np.intersect1d(x, y, assume_unique=True).size)
        return common / (len(x) + len(y) - common)
    x, y = np.frombuffer(a, dtype="<u4"), np.frombuffer(b, dtype="<u4")
    return int(np.count_nonzero(x == y)) / len(x) if len(x) else 0.0


def _keeper_similarity(is_keeper: bool, mine: bytes, keeper: bytes, exact: bool) -> float:
    """A member's similarity to its keeper as the result files store it (f32; the keeper's own is 1)."""
    return 1.0 if is_keeper else float(np.float32(_similarity(mine, keeper, exact)))


class WriteFiles:
    """Stage 4: (file index, (path, output, members)) -> the attribute file; returns the file's UnitStats."""

    def __init__(self, attribute: str, cluster_attribute: str, skip_bad_lines: bool, s3: Any):
        self.attribute = attribute
        self.cluster_attribute = cluster_attribute
        self.skip_bad_lines = skip_bad_lines
        self.s3 = s3

    def __call__(self, items: Iterable[tuple[int, tuple]]) -> Iterator[tuple[str, Any]]:
        from dolma.executors.base import describe_error
        from dolma.minhash_attributes import write_marks

        io.configure_s3(self.s3)
        for _, (path, output, members) in items:
            try:
                stats = write_marks(
                    path, output, dict(members or []), self.attribute, self.cluster_attribute, self.skip_bad_lines
                )
            except Exception as exc:
                yield path, describe_error(exc)
                continue
            yield path, stats


def spark_minhash(
    sc: Any,
    inputs: list[str],
    outputs: list[str],
    params: mh.MinHashParams,
    key: tuple,
    attribute: str,
    cluster_attribute: str,
    *,
    skip_bad_lines: bool,
    s3: Any,
) -> Summary:
    from pyspark import StorageLevel

    start = time.monotonic()
    files = sc.parallelize(list(enumerate(inputs)), max(1, len(inputs)))
    signed = files.mapPartitions(SignFiles(params, key, skip_bad_lines, s3)).persist(StorageLevel.MEMORY_AND_DISK)
    counts = dict(signed.map(lambda r: (r[0], 1)).reduceByKey(operator.add).collect())  # one int per file
    offsets = np.cumsum([0] + [counts.get(i, 0) for i in range(len(inputs))]).tolist()
    base = sc.broadcast(offsets)
    exact = params.verify == "exact"
    # (ordinal, (file index, line, sketch, band keys, keyed)): the sketch is what similarities are computed on
    docs = signed.map(
        lambda r: (base.value[r[0]] + r[1][0], (r[0], r[1][1], r[1][5] if exact else r[1][2], r[1][3], r[1][4]))
    )
    keyed = docs.filter(lambda d: d[1][4])
    if params.verify == "none":
        edges = (
            keyed.flatMap(lambda d: [(k, d[0]) for k in d[1][3]]).groupByKey().flatMap(lambda b: _bucket_edges(b[1]))
        )
    else:
        buckets = keyed.flatMap(lambda d: [(k, (d[0], d[1][2])) for k in d[1][3]]).groupByKey()
        edges = buckets.flatMap(VerifiedEdges(params.threshold, exact))
    labels = components(edges).cache()  # (ordinal, keeper): joined below, then counted
    sketches = docs.map(lambda d: (d[0], (d[1][0], d[1][1], d[1][2])))
    # keeper -> (ordinal, (file, line, sketch))
    with_mine = labels.join(sketches).map(lambda r: (r[1][0], (r[0], r[1][1])))
    keeper_sketches = sketches.map(lambda s: (s[0], s[1][2]))
    members = with_mine.join(keeper_sketches).map(
        lambda r: (
            r[1][0][1][0],
            (r[1][0][1][1], (r[1][0][0], r[0], _keeper_similarity(r[0] == r[1][0][0], r[1][0][1][2], r[1][1], exact))),
        )
    )  # file -> (line, (ordinal, keeper, similarity))
    by_file = members.groupByKey().mapValues(list)
    plan = sc.parallelize([(i, (p, o)) for i, (p, o) in enumerate(zip(inputs, outputs))], max(1, len(inputs)))
    work = plan.leftOuterJoin(by_file).map(lambda r: (r[0], (r[1][0][0], r[1][0][1], r[1][1])))
    results = work.mapPartitions(WriteFiles(attribute, cluster_attribute, skip_bad_lines, s3)).collect()
    clusters = labels.filter(lambda r: r[0] == r[1]).count()
    labels.unpersist()
    signed.unpersist()
    summary = Summary(units=len(inputs))
    for path, outcome in results:
        if isinstance(outcome, UnitStats):
            summary.succeeded += 1
            summary.stats.add(outcome)
        else:
            summary.failures.append(UnitFailure(unit=Unit(input=path, outputs=()), error=outcome, attempts=1))
    summary.stats.counters["clusters (2+ documents)"] = clusters
    summary.seconds = time.monotonic() - start
    return summary
