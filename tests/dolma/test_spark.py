"""The Spark executor with a real Spark: local[2] in this process, and a standalone master + worker on 127.0.0.1.

Every test compares a Spark run's files with the local executor's, byte for byte: the local executor is the
definition of the output, and Spark must only change where units run.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from dolma import atomic
from dolma import config as dconfig
from dolma.commands import tag
from dolma.commands.tag import TagConfig
from dolma.executors.spark import effective_master
from dolma.executors.summary import is_run_summary
from tests.conftest import LOOPBACK_SPARK_CONF, REPO, write_jsonl_gz

os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"

TAGGERS = ["char_length_v1", "whitespace_tokenizer_with_paragraphs_v1", "random_number_v1", "ft_lang_id_en_doc_v2"]
LOOPBACK_CONF = LOOPBACK_SPARK_CONF


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_corpus(root: Path, files: int = 5, docs: int = 40) -> str:
    """A small corpus with several compressions, unicode, empty text and planted repeats."""
    words = ["alpha", "beta", "gamma", "délta", "epsilon", "zeta", "Straße", "日本語", "the", "and"]
    for f in range(files):
        rows = []
        for i in range(docs):
            n = (f * 31 + i * 7) % 23
            text = "\n".join(" ".join(words[(i + j + k) % len(words)] for k in range(n % 9 + 1)) for j in range(n % 5))
            if i % 11 == 0:
                text = "This is a repeated paragraph.\nIt appears in many documents."
            rows.append({"id": f"f{f}-{i}", "text": text, "source": "test", "metadata": {"url": f"u{i % 13}"}})
        ext = [".jsonl.gz", ".jsonl.zst", ".jsonl"][f % 3]
        path = root / "documents" / "sub" / f"part-{f}{ext}"
        if ext == ".jsonl.gz":
            write_jsonl_gz(path, rows)
        else:
            atomic.write_bytes(str(path), "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode())
    return str(root / "documents" / "**" / "*.jsonl*")


def tag_config(documents: str, executor: str = "local", **extra) -> TagConfig:
    data = {
        "documents": [documents],
        "taggers": TAGGERS,
        "tagger_config": {"random_number_v1": {"seed": 7}},
        "quiet": True,
        "executor": executor,
        "spark": {"master": "local[2]", "conf": LOOPBACK_CONF},
        **extra,
    }
    return dconfig.build(TagConfig, overrides=data)


def tree(root: Path) -> dict[str, bytes]:
    """Every file under root (hidden temporaries included, so leftovers are caught) -> bytes."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not is_run_summary(p)
    }


@pytest.fixture(scope="module")
def local_expected(tmp_path_factory) -> dict[str, bytes]:
    """The local executor's attribute files for make_corpus(): what every Spark run must reproduce."""
    root = tmp_path_factory.mktemp("local")
    pattern = make_corpus(root)
    assert tag.run(tag_config(pattern)) == 0
    out = tree(root / "attributes")
    assert len(out) == 5 * len(TAGGERS)
    return out


def test_executor_options_from_flags():
    config = dconfig.build(
        TagConfig,
        overrides=[
            "--documents",
            "x",
            "--taggers",
            "char_length_v1",
            "--executor",
            "spark",
            "--spark.master",
            "spark://127.0.0.1:7077",
            "--spark.app_name",
            "tagging",
            "--spark.conf",
            "{spark.task.maxFailures: 3, spark.executor.memory: 2g, spark.speculation: true}",
        ],
    )
    assert config.executor == "spark"
    assert config.spark.master == "spark://127.0.0.1:7077" and config.spark.app_name == "tagging"
    from dolma.executors.spark import spark_conf_entries

    entries = spark_conf_entries(config.spark)
    assert entries == {"spark.task.maxFailures": "3", "spark.executor.memory": "2g", "spark.speculation": "true"}
    assert effective_master("local[2]", entries) == "local[2,3]"
    assert effective_master("local[*]", {}) == "local[*,4]"
    assert effective_master("local[2,5]", entries) == "local[2,5]"
    assert effective_master("spark://h:7077", entries) == "spark://h:7077"
    with pytest.raises(Exception, match="executor"):
        dconfig.build(TagConfig, overrides=["--documents", "x", "--taggers", "a", "--executor", "ray"])


def test_tag_on_spark_equals_local_and_resumes(tmp_path, spark_context, local_expected):
    expected = local_expected
    root = tmp_path / "spark"
    pattern = make_corpus(root)
    config = tag_config(pattern, "spark")
    from dolma.executors.spark import SparkExecutor

    sets, units = tag.plan(config)
    summary = SparkExecutor(config.spark, quiet=True, description="tag").run(tag.TagJob(config, sets), units)
    assert summary.ok and summary.succeeded == 5 and summary.stats.documents_in == 200
    assert summary.stats.bytes_in > 0 and summary.stats.bytes_out > 0
    assert tree(root / "attributes") == expected
    # A rerun finds every unit complete and runs nothing.
    again = SparkExecutor(config.spark, quiet=True, description="tag").run(tag.TagJob(config, sets), units)
    assert again.skipped == 5 and again.succeeded == 0 and again.ok


COUNTING_TAGGER = """
import os
from dolma.documents import Span
from dolma.registry import register
from dolma.tagger import Tagger

@register("counting_test_tagger{suffix}")
class CountingTagger(Tagger):
    '''Records every creation (pid) so the test can check taggers load once per executor process.'''

    def __init__(self, config=None):
        super().__init__(config)
        with open({log!r}, "a") as fh:
            fh.write(f"{{os.getpid()}}\\n")

    def predict(self, doc):
        return [Span(0, len(doc.text), "len", float(len(doc.text)))]

@register("killing_test_tagger{suffix}")
class KillingTagger(Tagger):
    '''Kills its own process mid-file, once (first attempt), like an executor lost to the OOM killer.'''

    def predict_batch(self, docs):
        if any(d.id.endswith("-20") for d in docs) and not os.path.exists({marker!r}):
            open({marker!r}, "w").close()
            os._exit(17)
        return [self.predict(d) for d in docs]

    def predict(self, doc):
        return [Span(0, min(3, len(doc.text)), "head", 1.0)]
"""


def test_killed_task_is_retried_and_taggers_load_once_per_process(tmp_path, spark_context):
    module = tmp_path / "test_taggers.py"
    creations = tmp_path / "creations.log"
    marker = tmp_path / "killed-once"
    module.write_text(COUNTING_TAGGER.format(log=str(creations), marker=str(marker), suffix=""))
    taggers = ["counting_test_tagger", "killing_test_tagger"]
    extra = {"taggers": taggers, "tagger_modules": [str(module)], "batch_size": 8}

    marker.touch()  # the local run must not kill this process; the Spark run starts without the marker
    local_root = tmp_path / "local"
    assert tag.run(tag_config(make_corpus(local_root), **extra)) == 0
    expected = tree(local_root / "attributes")
    marker.unlink()
    creations.unlink()

    root = tmp_path / "spark"
    assert tag.run(tag_config(make_corpus(root), "spark", **extra)) == 0
    assert marker.exists(), "the injected kill did not happen"
    assert tree(root / "attributes") == expected  # no partial or temporary file left either
    pids = creations.read_text().split()
    assert len(pids) == len(set(pids)), f"a tagger was created twice in one process: {pids}"
    assert len(pids) <= 5


def test_unit_failures_make_a_nonzero_exit_and_others_finish(tmp_path, spark_context):
    root = tmp_path / "spark"
    pattern = make_corpus(root)
    bad = root / "documents" / "sub" / "part-9.jsonl"
    bad.write_text('{"id": "ok", "text": "fine", "source": "t"}\n{"id": 3, "text": "bad id"}\n')
    config = tag_config(pattern, "spark", taggers=["char_length_v1"])
    from dolma.executors.spark import SparkExecutor

    sets, units = tag.plan(config)
    summary = SparkExecutor(config.spark, quiet=True, retries=2).run(tag.TagJob(config, sets), units)
    assert summary.succeeded == 5 and summary.failed == 1
    failure = summary.failures[0]
    assert failure.unit.input == str(bad) and failure.attempts == 1  # input errors are not retried
    assert f"{bad}:2" in failure.error and "id" in failure.error
    assert not (root / "attributes" / "char_length_v1" / "sub" / "part-9.jsonl").exists()
    assert tag.run(config) == 1  # the command exits non-zero (the 5 good files are skipped as complete)


def test_s3_in_and_out_on_spark(tmp_path, spark_context, s3_server, s3_bucket, local_expected):
    expected = local_expected
    src = tmp_path / "upload"
    make_corpus(src)
    client = s3_server.client()
    for path in sorted((src / "documents").rglob("*")):
        if path.is_file():
            client.upload_file(str(path), s3_bucket, f"corpus/{path.relative_to(src)}")
    config = tag_config(
        f"s3://{s3_bucket}/corpus/documents/**/*.jsonl*", "spark", s3={"endpoint_url": s3_server.endpoint}
    )
    assert tag.run(config) == 0
    keys = s3_server.keys(s3_bucket, "corpus/attributes/")
    got = {k[len("corpus/attributes/") :]: client.get_object(Bucket=s3_bucket, Key=k)["Body"].read() for k in keys}
    assert got == expected


# ----------------------------------------------------------------------------------------------------------
# Standalone cluster: a master and one worker started here, bound to 127.0.0.1; the job goes through
# spark-submit (dolma-spark-submit), so the documented cluster entry point is what is tested.
# ----------------------------------------------------------------------------------------------------------


def _spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


def _wait_for(predicate, what: str, proc_list, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        for proc in proc_list:
            if proc.poll() is not None:
                raise RuntimeError(f"{what}: a Spark daemon exited early")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: timed out")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def standalone_cluster(tmp_path_factory):
    home = _spark_home()
    logs = tmp_path_factory.mktemp("spark-standalone")
    env = dict(
        os.environ,
        SPARK_HOME=str(home),
        SPARK_LOCAL_IP="127.0.0.1",
        SPARK_LOG_DIR=str(logs),
        PYSPARK_PYTHON=sys.executable,
        SPARK_WORKER_DIR=str(logs / "work"),
    )
    master_port, master_ui, worker_port, worker_ui = (_free_port() for _ in range(4))
    spark_class = str(home / "bin" / "spark-class")
    procs: list[subprocess.Popen] = []
    try:
        procs.append(
            subprocess.Popen(
                [
                    spark_class,
                    "org.apache.spark.deploy.master.Master",
                    *("--host", "127.0.0.1", "--port", str(master_port), "--webui-port", str(master_ui)),
                ],
                env=env,
                stdout=open(logs / "master.log", "wb"),  # noqa: SIM115 - the daemon owns it
                stderr=subprocess.STDOUT,
            )
        )
        url = f"spark://127.0.0.1:{master_port}"

        def master_up() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", master_port), timeout=0.5):
                    return True
            except OSError:
                return False

        _wait_for(master_up, "standalone master", procs)
        procs.append(
            subprocess.Popen(
                [
                    spark_class,
                    "org.apache.spark.deploy.worker.Worker",
                    url,
                    *("--host", "127.0.0.1", "--port", str(worker_port), "--webui-port", str(worker_ui)),
                    *("--cores", "2", "--memory", "2g", "--work-dir", str(logs / "work")),
                ],
                env=env,
                stdout=open(logs / "worker.log", "wb"),  # noqa: SIM115 - the daemon owns it
                stderr=subprocess.STDOUT,
            )
        )

        def worker_registered() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{master_ui}/json/", timeout=2) as resp:
                    return json.load(resp).get("aliveworkers", 0) >= 1
            except OSError:
                return False

        _wait_for(worker_registered, "standalone worker", procs)
        yield url
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in reversed(procs):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def spark_submit(cluster: str, config: Path, *command: str, conf: dict[str, str]) -> subprocess.CompletedProcess:
    """Run `dolma-spark-submit --master <cluster> ... -- -c <config> <command>` (driver bound to 127.0.0.1).

    `conf` is added to the loopback settings; asserts the job exited 0 (showing its output if not).
    """
    submit = shutil.which("dolma-spark-submit", path=str(Path(sys.executable).parent)) or "dolma-spark-submit"
    env = dict(os.environ, SPARK_LOCAL_IP="127.0.0.1", PYTHONPATH=str(REPO), SPARK_HOME=str(_spark_home()))
    settings = {**LOOPBACK_CONF, **conf}
    conf_args = [arg for key, value in settings.items() for arg in ("--conf", f"{key}={value}")]
    result = subprocess.run(
        [submit, "--master", cluster, *conf_args, "--", "-c", str(config), *command],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-5000:]
    return result


def test_standalone_cluster_via_spark_submit(tmp_path, standalone_cluster):
    module = tmp_path / "test_taggers.py"
    creations = tmp_path / "creations.log"
    marker = tmp_path / "killed-once"
    # Registered under other names: this process may already hold the taggers of the local[2] tests.
    module.write_text(COUNTING_TAGGER.format(log=str(creations), marker=str(marker), suffix="_cluster"))
    extra = {"tagger_modules": [str(module)], "taggers": [*TAGGERS, "killing_test_tagger_cluster"]}

    marker.touch()  # the local run must not kill itself
    local_root = tmp_path / "local"
    assert tag.run(tag_config(make_corpus(local_root), **extra)) == 0
    expected = tree(local_root / "attributes")
    marker.unlink()

    root = tmp_path / "cluster"
    pattern = make_corpus(root)
    cfg = tmp_path / "tag.yaml"
    cfg.write_text(
        json.dumps(
            {
                "documents": [pattern],
                "taggers": extra["taggers"],
                "tagger_modules": extra["tagger_modules"],
                "tagger_config": {"random_number_v1": {"seed": 7}},
                "spark": {"app_name": "dolma-standalone-test"},
            }
        )
    )
    result = spark_submit(standalone_cluster, cfg, "tag", conf={"spark.executor.cores": "2"})
    # The driver prints the summary (spark-submit merges the Python driver's stderr into its stdout).
    assert re.search(r"processed\s*│\s*5 │", result.stdout + result.stderr)
    assert "Python worker exited unexpectedly" in result.stderr  # Spark saw the kill and retried the task
    assert marker.exists(), "the injected kill did not happen on the cluster"
    assert tree(root / "attributes") == expected


def test_dedupe_on_standalone_cluster_equals_local(tmp_path, standalone_cluster):
    """Global paragraph dedupe submitted to the cluster: the attribute files of the local deduper, byte for byte."""
    from tests.conftest import SAMPLE

    shutil.copytree(SAMPLE / "documents", tmp_path / "documents")
    section = {"name": "NAME", "paragraphs": {"attribute_name": "bff_dup_para"}, "skip_empty": True}
    cfg = tmp_path / "dedupe.yaml"
    cfg.write_text(
        json.dumps(
            {
                "documents": [str(tmp_path / "documents" / "**" / "*.jsonl.gz")],
                "dedupe": section,
                "bloom_filter": {
                    "file": str(tmp_path / "bloom.bin"),
                    "estimated_doc_count": 1_000_000,
                    "desired_false_positive_rate": 1e-12,
                },
                "spark": {"app_name": "dolma-standalone-dedupe-test"},
            }
        )
    )
    from dolma.commands import dedupe
    from dolma.dedupe.config import DedupeConfig

    overrides = json.loads(cfg.read_text())
    overrides["dedupe"]["name"] = "local"
    assert dedupe.run(dconfig.build(DedupeConfig, overrides={**overrides, "quiet": True})) == 0
    (tmp_path / "bloom.bin").unlink()  # Spark refuses an existing filter it would not use

    spark_submit(
        standalone_cluster, cfg, "dedupe", "--dedupe.name", "cluster", conf={"spark.default.parallelism": "3"}
    )
    assert tree(tmp_path / "attributes" / "cluster") == tree(tmp_path / "attributes" / "local")
    assert len(tree(tmp_path / "attributes" / "local")) == 5


def test_minhash_dedupe_on_standalone_cluster_equals_local(tmp_path, standalone_cluster):
    """Near-duplicate dedupe (dedupe.minhash, verify none) submitted to the cluster: the local run's bytes."""
    from tests.conftest import SAMPLE

    shutil.copytree(SAMPLE / "documents", tmp_path / "documents")
    section = {"name": "NAME", "minhash": {"attribute_name": "nd", "threshold": 0.6, "verify": "none"}}
    cfg = tmp_path / "minhash.yaml"
    cfg.write_text(
        json.dumps(
            {
                "documents": [str(tmp_path / "documents" / "**" / "*.jsonl.gz")],
                "dedupe": section,
                "executor": "spark",
                "spark": {"app_name": "dolma-standalone-minhash-test"},
            }
        )
    )
    from dolma.commands import dedupe
    from dolma.dedupe.config import DedupeConfig

    overrides = json.loads(cfg.read_text())
    overrides["dedupe"]["name"] = "local"
    overrides.update(executor="local", quiet=True)
    assert dedupe.run(dconfig.build(DedupeConfig, overrides=overrides)) == 0
    spark_submit(
        standalone_cluster, cfg, "dedupe", "--dedupe.name", "cluster", conf={"spark.default.parallelism": "3"}
    )
    expected = tree(tmp_path / "attributes" / "local")
    assert len(expected) == 5 and tree(tmp_path / "attributes" / "cluster") == expected
    assert any(b'"nd":' in gzip.decompress(data) for data in expected.values())


def test_mix_on_spark_equals_local(tmp_path, spark_context):
    """Filters, sampling (seeded), a counting pass (target_bytes) and size-capped shards: same bytes on Spark."""
    from dolma.config import build
    from mixers.mix import MixConfig, run_mix

    for f in range(4):
        docs = [{"id": f"{f}-{i}", "text": "words " * (1 + (i * 7 + f) % 40), "source": "t"} for i in range(150)]
        rows = [{"id": d["id"], "attributes": {"q__t__score": [[0, 1, (i % 10) / 10]]}} for i, d in enumerate(docs)]
        write_jsonl_gz(tmp_path / "documents" / f"part-{f}.jsonl.gz", docs)
        write_jsonl_gz(tmp_path / "attributes" / "q" / f"part-{f}.jsonl.gz", rows)
    outputs = {}
    for executor in ("local", "spark"):
        stream = {
            "name": "mixed",
            "documents": [str(tmp_path / "documents" / "*.gz")],
            "attributes": ["q"],
            "filter": {"exclude": ["$.attributes[?(@.q__t__score[0][2] < 0.2)]"]},
            "target_bytes": 40_000,
            "seed": 3,
            "output": {"path": str(tmp_path / executor), "max_size_in_bytes": 6000},
        }
        overrides = {"streams": [stream], "quiet": True, "executor": executor, "processes": 2}
        overrides["spark"] = {"master": "local[2]", "conf": LOOPBACK_CONF}
        assert run_mix(build(MixConfig, overrides=overrides)) == 0
        outputs[executor] = tree(tmp_path / executor)
    assert len(outputs["local"]) > 3
    assert outputs["spark"] == outputs["local"]


def write_tokens_corpus(root: Path, files: int, docs: int, text) -> str:
    """`files` documents files of `docs` documents each, `text(f, i)` the text of document i of file f."""
    for f in range(files):
        rows = [{"id": f"{f}-{i}", "text": text(f, i), "source": "t"} for i in range(docs)]
        write_jsonl_gz(root / "documents" / f"part-{f}.jsonl.gz", rows)
    return str(root / "documents" / "*.gz")


def run_tokens_tree(spark_context, documents: str, destination: Path, executor: str, **options) -> dict[str, bytes]:
    """`dolma tokens` with `options` on `executor` (checking that Spark ran jobs exactly when asked to); every
    file it left under `destination`."""
    from dolma.config import build
    from mixers.tokens_command import run as run_tokens
    from mixers.tokens_config import TokensConfig

    overrides = {
        "documents": [documents],
        "destination": str(destination),
        **options,
        "quiet": True,
        "executor": executor,
        "processes": 2,
        "spark": {"master": "local[2]", "conf": LOOPBACK_CONF},
    }
    jobs_before = len(spark_context.statusTracker().getJobIdsForGroup())
    assert run_tokens(build(TokensConfig, overrides=overrides)) == 0
    ran_on_spark = len(spark_context.statusTracker().getJobIdsForGroup()) > jobs_before
    assert ran_on_spark == (executor == "spark")
    return tree(destination)


def test_tokens_on_spark_equals_local(tmp_path, spark_context):
    """Token shards and indexes (seeded ring + shuffle window, several groups): same bytes on Spark."""
    documents = write_tokens_corpus(tmp_path, 5, 80, lambda f, i: f"document {i} of file {f}. " * (1 + i % 9))
    options = {"max_size": 3000, "ring_size": 2, "seed": 11, "files_per_process": 2}
    outputs = {
        executor: run_tokens_tree(spark_context, documents, tmp_path / executor, executor, **options)
        for executor in ("local", "spark")
    }
    assert len([name for name in outputs["local"] if name.endswith(".npy")]) > 2
    assert outputs["spark"] == outputs["local"]


def _index_ids(root: Path) -> list[str]:
    """Document ids of every index row, in shard and row order: the order a training loader reads them in."""
    import csv
    import gzip

    ids = []
    for path in sorted(root.glob("part-*.csv.gz")):
        with gzip.open(path, "rt", encoding="utf-8", newline="") as fh:
            ids.extend(row[2] for row in csv.reader(fh))
    return ids


def test_tokens_global_shuffle_on_spark_equals_local(tmp_path, spark_context):
    """Groups tokenized on Spark, then the global shuffle across them: the local executor's bytes, every file."""
    documents = write_tokens_corpus(tmp_path, 6, 70, lambda f, i: f"text {i} from file {f}, " * (1 + (i * 5 + f) % 11))
    options = {"max_size": 2500, "ring_size": 2, "shuffle_window": 8, "seed": 5, "files_per_process": 2}
    options.update(verify=True, verify_samples=-1)
    shuffle = {"enabled": True, "seed": 23, "window": 40, "work_dir": str(tmp_path / "scratch")}
    outputs = {
        name: run_tokens_tree(
            spark_context, documents, tmp_path / name, executor, **options, global_shuffle={**shuffle, "enabled": on}
        )
        for name, executor, on in (("plain", "local", False), ("local", "local", True), ("spark", "spark", True))
    }
    local, spark = outputs["local"], outputs["spark"]
    npy = sorted(name for name in local if name.endswith(".npy"))
    assert len(npy) > 2 and all(name.startswith("part-0-") for name in npy)
    # Only the shards and the marker: the staged groups (.unshuffled) and the scratch buckets are gone.
    assert set(local) == {*npy, *(n[: -len(".npy")] + ".csv.gz" for n in npy), ".shuffle.done"}
    assert spark == local
    # The shuffle happened: the same documents, in an order that mixes the three groups.
    plain_ids, shuffled_ids = _index_ids(tmp_path / "plain"), _index_ids(tmp_path / "local")
    assert sorted(shuffled_ids) == sorted(plain_ids) and len(plain_ids) == 6 * 70
    assert shuffled_ids != plain_ids
    groups = [int(doc_id.split("-")[0]) // 2 for doc_id in shuffled_ids[:60]]
    assert len(set(groups)) == 3, "the first shard's documents should come from every group"
    assert not (tmp_path / "scratch").exists() or not any((tmp_path / "scratch").iterdir())
