"""Driver for clusters where spark-submit launches the driver (YARN/Kubernetes cluster mode, or by habit).

    spark-submit --master spark://host:7077 "$(python -m dolma.spark_driver --path)" -c tag.yaml tag
    dolma-spark-submit --master yarn --deploy-mode cluster -- -c tag.yaml tag      # the same, shorter

The arguments after the script are the usual `dolma` arguments; `--executor spark` is implied. The master
and other Spark settings come from spark-submit (the config's `spark.master` is then ignored).
"""

from __future__ import annotations

import os
import shutil
import sys

# Run as a script, this file's directory (the dolma package) would shadow top-level modules: drop it.
_here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]


def driver_args(argv: list[str]) -> list[str]:
    """`dolma` arguments with the Spark executor selected (unless the user chose one explicitly)."""
    if any(a == "--executor" or a.startswith("--executor=") for a in argv):
        return list(argv)
    return [*argv, "--executor", "spark"]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv == ["--path"]:
        print(os.path.abspath(__file__))
        return 0
    from dolma.cli import main as cli_main

    return cli_main(driver_args(argv))


def spark_submit_binary() -> str | None:
    """spark-submit from $SPARK_HOME, else the one shipped with pyspark, else from PATH; None if there is none."""
    home = os.environ.get("SPARK_HOME")
    candidates = [os.path.join(home, "bin", "spark-submit")] if home else []
    try:
        import pyspark

        candidates.append(os.path.join(os.path.dirname(pyspark.__file__), "bin", "spark-submit"))
    except ImportError:
        pass
    for cand in candidates:
        if os.path.exists(cand):
            return cand
    return shutil.which("spark-submit")


def submit(argv: list[str] | None = None) -> int:
    """`dolma-spark-submit [spark-submit options] -- [dolma arguments]`: run spark-submit with this driver."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" in argv:
        cut = argv.index("--")
        spark_args, dolma_args = argv[:cut], argv[cut + 1 :]
    else:
        spark_args, dolma_args = [], argv
    if not dolma_args:
        print("usage: dolma-spark-submit [spark-submit options] -- [-c CONFIG] <command> [--field value ...]")
        return 2
    # The driver and the executors run this interpreter (this venv) unless the user chose another one. In
    # cluster deploy mode the driver runs elsewhere: the interpreter then comes from the user's settings.
    cluster_mode = (
        any(a == "cluster" and i > 0 and spark_args[i - 1] == "--deploy-mode" for i, a in enumerate(spark_args))
        or "--deploy-mode=cluster" in spark_args
    )
    if not cluster_mode:
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    binary = spark_submit_binary()
    if binary is None:
        where = f"$SPARK_HOME/bin ({os.environ['SPARK_HOME']}), " if os.environ.get("SPARK_HOME") else ""
        print(
            f"error: spark-submit not found (looked in {where}the pyspark package and PATH): install pyspark, which "
            "ships it (pip install 'dolma-toolkit[spark]'), or set SPARK_HOME to a Spark installation",
            file=sys.stderr,
        )
        return 127
    command = [binary, *spark_args, os.path.abspath(__file__), *dolma_args]
    try:
        os.execv(command[0], command)
    except OSError as exc:
        print(f"error: cannot run {binary}: {exc.strerror or exc}", file=sys.stderr)
        return 126
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main())
