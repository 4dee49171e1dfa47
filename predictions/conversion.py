"""Convert a fitted estimator to ONNX and prove on a sample that ONNX Runtime agrees with it.

Agreement means equal labels and numbers (predictions and probabilities) within 1e-5
relative. Anything else (an unsupported estimator, a converter error, a disagreement)
leaves the version on the scikit-learn runtime with a note saying why.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from predictions import boosters
from predictions.introspect import final_estimator
from predictions.runtimes import OnnxRunner, SklearnRunner

logger = logging.getLogger(__name__)
RTOL = 1e-5
ATOL = 1e-6  # probabilities near zero: float32 noise, not a disagreement


@dataclass(frozen=True)
class Conversion:
    """The outcome of a conversion: ONNX bytes and input layout, or None and why not."""

    onnx_bytes: bytes | None
    layout: str  # "matrix" (one [N, F] float input) or "columns" (one [N, 1] input per feature)
    note: str


def sample_columns(features: list[dict], rows: int = 200, seed: int = 0) -> list[list]:
    """Deterministic synthetic inputs covering each feature's range or categories."""
    rng = np.random.default_rng(seed)
    columns = []
    for feature in features:
        if feature["type"] == "category":
            cats = feature["categories"]
            columns.append([cats[i % len(cats)] for i in rng.permutation(rows)])
        else:
            low = feature.get("minimum", -3.0)
            high = feature.get("maximum", 3.0)
            columns.append(rng.uniform(low, high, rows).tolist())
    return columns


def columns_from_sample(sample: Any, features: list[dict], limit: int = 500) -> list[list]:
    if hasattr(sample, "columns"):
        return [sample[f["name"]].tolist()[:limit] for f in features]
    matrix = np.asarray(sample)[:limit]
    return [matrix[:, i].tolist() for i in range(len(features))]


def _convert(estimator: Any, features: list[dict], layout: str) -> bytes:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    if layout == "matrix":
        initial = [("input", FloatTensorType([None, len(features)]))]
    else:
        initial = [
            (f["name"], StringTensorType([None, 1]))
            if f["type"] == "category"
            else (f["name"], FloatTensorType([None, 1]))
            for f in features
        ]
    final = final_estimator(estimator)
    options = {id(final): {"zipmap": False}} if hasattr(final, "predict_proba") else {}
    opset = None
    if boosters.is_booster(final):
        boosters.register_converters()
        opset = boosters.target_opset()
    model = convert_sklearn(estimator, initial_types=initial, options=options, target_opset=opset)
    return model.SerializeToString()


def agree(expected: tuple, actual: tuple, task: str) -> str | None:
    """None when both runtimes agree, else what differs."""
    (values, proba), (onnx_values, onnx_proba) = expected, actual
    if task == "classification":
        if [str(v) for v in values] != [str(v) for v in onnx_values]:
            return "labels differ from scikit-learn on the check sample"
        if proba is not None and (
            onnx_proba is None or not np.allclose(onnx_proba, proba, rtol=RTOL, atol=ATOL)
        ):
            return "probabilities differ from scikit-learn by more than 1e-5"
        return None
    expected_f = np.asarray(values, dtype=np.float64)
    if not np.allclose(np.asarray(onnx_values, dtype=np.float64), expected_f, rtol=RTOL, atol=0):
        return "predictions differ from scikit-learn by more than 1e-5 relative"
    return None


def convert_and_verify(
    estimator: Any, features: list[dict], task: str, sample: Any = None
) -> Conversion:
    """Try ONNX (matrix layout for all-numeric inputs first); keep it only if it agrees."""
    if sample is not None:
        columns = columns_from_sample(sample, features)
    else:
        columns = sample_columns(features)
    try:
        reference = SklearnRunner(estimator, features, task).run(columns)
    except Exception as exc:
        raise ValueError(
            f"the estimator cannot predict inputs shaped like the schema ({exc.__class__.__name__})"
        ) from exc
    numeric = all(f["type"] == "number" for f in features)
    has_names = getattr(estimator, "feature_names_in_", None) is not None
    layouts = ["matrix", "columns"] if numeric and not has_names else ["columns"]
    if numeric and has_names:
        layouts = ["columns", "matrix"]
    problems = []
    for layout in layouts:
        try:
            data = _convert(estimator, features, layout)
            outcome = OnnxRunner(data, features, task, layout).run(columns)
        except Exception as exc:  # noqa: BLE001 - converters raise anything; we fall back
            problems.append(f"conversion failed ({exc.__class__.__name__}: {str(exc)[:120]})")
            continue
        problem = agree(reference, outcome, task)
        if problem is None:
            return Conversion(data, layout, "")
        problems.append(problem)
    note = "; ".join(dict.fromkeys(problems))[:290]
    logger.info("ONNX not used: %s", note)
    return Conversion(None, "", note or "ONNX conversion not attempted")
