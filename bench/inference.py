"""Microseconds per predict: scikit-learn vs ONNX Runtime, both demo models, 1/100/10,000 rows.

Run by hand: `.venv/bin/python bench/inference.py [--out bench/results/inference.json]`.
Both runtimes get the same validated columns (what a request hands them); "validated" adds
the strict input validation a request pays. One intra-op thread, like the server.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlapi.settings")
os.environ.setdefault("DJANGO_DEBUG", "1")
os.environ.setdefault("MLAPI_DATA_DIR", tempfile.mkdtemp(prefix="mlapi-bench-"))

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402

from predictions.conversion import convert_and_verify  # noqa: E402
from predictions.demo import train_house_price, train_iris  # noqa: E402
from predictions.introspect import infer_schema  # noqa: E402
from predictions.runtimes import OnnxRunner, SklearnRunner  # noqa: E402
from predictions.validation import validate_instances  # noqa: E402

SIZES = (1, 100, 10_000)


def timed(fn, budget_s: float = 1.5, max_runs: int = 2000) -> float:
    """Median µs of `fn()` over as many runs as fit in the budget (at least 5)."""
    fn()  # warm up
    samples: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(samples) < 5 or (time.perf_counter() < deadline and len(samples) < max_runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e6)
    return statistics.median(samples)


def demo_cases():
    rng = np.random.default_rng(0)
    iris, iris_schema = train_iris()
    house, frame = train_house_price()
    house_schema = infer_schema(house, frame)
    cases = []
    for name, estimator, schema, task in (
        ("iris", iris, iris_schema, "classification"),
        ("house-price", house, house_schema, "regression"),
    ):
        features = schema["features"]
        conversion = convert_and_verify(estimator, features, task)
        assert conversion.onnx_bytes is not None, conversion.note
        onnx = OnnxRunner(conversion.onnx_bytes, features, task, conversion.layout)
        sk = SklearnRunner(estimator, features, task)
        for rows in SIZES:
            if name == "iris":
                instances = (
                    rng.uniform([4, 2, 1, 0.1], [8, 4.5, 7, 2.5], (rows, 4)).round(1).tolist()
                )
            else:
                cats = [f["categories"] for f in features]
                instances = [[c[rng.integers(len(c))] for c in cats] for _ in range(rows)]
            cases.append((name, rows, features, instances, sk, onnx))
    return cases


SWITCHER = """
import os, sys, time, django
sys.path.insert(0, {root!r})
django.setup()
from predictions.models import ModelVersion
from predictions.registry import set_default_version
set_default_version(model_version=ModelVersion.objects.get(model__name="iris", version=sys.argv[1]))
print(time.time())
"""


def measure_default_switch(trials: int = 5) -> list[float]:
    """Seconds from another process committing a default switch to this one serving it."""
    import subprocess

    from django.core.management import call_command

    from predictions.inference import get_predictor
    from predictions.registry import register_model_version

    call_command("migrate", verbosity=0)
    iris, schema = train_iris()
    for version in ("1", "2"):
        register_model_version(name="iris", estimator=iris, input_schema=schema, version=version)
    delays = []
    for trial in range(trials):
        target = "2" if trial % 2 == 0 else "1"
        get_predictor("iris")  # warm
        process = subprocess.Popen(
            [sys.executable, "-c", SWITCHER.format(root=str(ROOT)), target],
            stdout=subprocess.PIPE,
            env=os.environ.copy(),
        )
        while get_predictor("iris").version != target:
            time.sleep(0.001)
        seen = time.time()
        committed = float(process.communicate()[0].strip().splitlines()[-1])
        delays.append(round(seen - committed, 3))
    return delays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "inference.json"))
    parser.add_argument("--skip-switch", action="store_true", help="skip the default-switch test")
    args = parser.parse_args()
    results = []
    header = f"{'model':<12}{'rows':>7}{'sklearn µs':>14}{'onnx µs':>12}{'speed-up':>10}"
    header += f"{'validate+onnx µs':>18}"
    print(header)
    print("-" * len(header))
    for name, rows, features, instances, sk, onnx in demo_cases():
        columns = validate_instances(features, instances, max_instances=len(instances))
        sk_us = timed(lambda sk=sk, c=columns: sk.run(c))
        onnx_us = timed(lambda onnx=onnx, c=columns: onnx.run(c))
        full_us = timed(
            lambda f=features, i=instances, onnx=onnx: onnx.run(
                validate_instances(f, i, max_instances=len(i))
            )
        )
        row = {
            "model": name,
            "rows": rows,
            "sklearn_us": round(sk_us, 1),
            "onnx_us": round(onnx_us, 1),
            "speedup": round(sk_us / onnx_us, 1),
            "validate_plus_onnx_us": round(full_us, 1),
        }
        results.append(row)
        print(
            f"{name:<12}{rows:>7}{sk_us:>14.1f}{onnx_us:>12.1f}{sk_us / onnx_us:>9.1f}x"
            f"{full_us:>18.1f}"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "threads": "onnxruntime intra_op=1 inter_op=1; sklearn n_jobs=1",
    }
    report = {"meta": meta, "results": results}
    if not args.skip_switch:
        delays = measure_default_switch()
        report["default_switch_seen_after_s"] = delays
        print(f"default switch in another process seen after (s): {delays}")
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
