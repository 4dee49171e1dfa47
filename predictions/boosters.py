"""Gradient-boosted trees: LightGBM and XGBoost scikit-learn estimators in the registry.

Persistence stays skops. Their wrappers (`LGBMClassifier`, `XGBRegressor`, ...) hold a native
`Booster` whose state is the library's own model format: LightGBM's text model (parsed by
`LGBM_BoosterLoadModelFromString`) and XGBoost's UBJSON buffer (`XGBoosterUnserializeFromBuffer`).
Trusting exactly these classes lets skops rebuild them by handing plain data to those parsers,
never by unpickling: a custom objective, metric or callback is a Python function in the state,
an untrusted type, and the file is refused.

ONNX conversion uses onnxmltools' converters, registered with skl2onnx so that pipelines holding
a booster convert in one graph (`register_converters`, called before converting).
"""

from __future__ import annotations

import functools
import logging

logger = logging.getLogger(__name__)

LIGHTGBM_TYPES = (
    "lightgbm.basic.Booster",
    "lightgbm.sklearn.LGBMClassifier",
    "lightgbm.sklearn.LGBMRegressor",
)
XGBOOST_TYPES = (
    "xgboost.core.Booster",
    "xgboost.sklearn.XGBClassifier",
    "xgboost.sklearn.XGBRegressor",
)
# LightGBM keeps its parameters in an OrderedDict (plain data; skops rebuilds its items).
CONTAINER_TYPES = ("collections.OrderedDict",)
TRUSTED_TYPES = LIGHTGBM_TYPES + XGBOOST_TYPES + CONTAINER_TYPES
CLASSIFIER_OPTIONS = {"nocl": [True, False], "zipmap": [True, False, "columns"]}


@functools.cache
def register_converters() -> tuple[str, ...]:
    """Register the onnxmltools converters of the installed boosting libraries (once).

    Returns the libraries registered; a library that is not installed is skipped (its
    estimators could not have been loaded anyway).
    """
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )

    done = []
    for library, classes, convert in (
        ("lightgbm", ("LGBMClassifier", "LGBMRegressor"), _lightgbm_converter),
        ("xgboost", ("XGBClassifier", "XGBRegressor"), _xgboost_converter),
    ):
        try:
            module = __import__(f"{library}.sklearn", fromlist=list(classes))
            converter = convert()
        except ImportError:
            logger.info("%s is not installed: its converters are not registered", library)
            continue
        classifier, regressor = (getattr(module, name) for name in classes)
        prefix = "LightGbm" if library == "lightgbm" else "XGBoost"
        update_registered_converter(
            classifier,
            f"{prefix}{classes[0]}",
            calculate_linear_classifier_output_shapes,
            converter,
            options=CLASSIFIER_OPTIONS,
        )
        update_registered_converter(
            regressor, f"{prefix}{classes[1]}", calculate_linear_regressor_output_shapes, converter
        )
        done.append(library)
    return tuple(done)


def _lightgbm_converter():
    from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm

    return convert_lightgbm


def _xgboost_converter():
    from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost

    return convert_xgboost


def is_booster(estimator: object) -> bool:
    """Whether `estimator` is a LightGBM or XGBoost scikit-learn estimator."""
    return type(estimator).__module__.split(".")[0] in ("lightgbm", "xgboost")


def target_opset() -> dict[str, int]:
    """Opsets for a graph with a booster: onnxmltools emits ai.onnx.ml 3 tree ensembles."""
    from skl2onnx import get_latest_tested_opset_version

    return {"": get_latest_tested_opset_version(), "ai.onnx.ml": 3}
