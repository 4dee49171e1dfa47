"""What a fitted estimator expects and returns: task, input schema and output description.

Schema format (stored on ModelVersion.input_schema): `{"features": [{"name", "type":
"number"|"category", "minimum"?, "maximum"?, "categories"?}]}` in the estimator's column order.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from predictions.models import Task

# scikit-learn is imported inside the functions that inspect an estimator (registration,
# conversion): a web worker serving ONNX models never needs it, and it costs ~140 MB RSS.


def infer_task(estimator: Any) -> str:
    from sklearn.base import is_classifier, is_regressor

    if is_classifier(estimator):
        return Task.CLASSIFICATION
    if is_regressor(estimator):
        return Task.REGRESSION
    raise ValueError("the estimator is neither a classifier nor a regressor")


def final_estimator(estimator: Any) -> Any:
    from sklearn.pipeline import Pipeline

    return estimator[-1] if isinstance(estimator, Pipeline) else estimator


def _encoders(estimator: Any) -> list[tuple[Any, list]]:
    """(encoder, its input columns) for every fitted encoder inside pipelines and transformers."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

    encoders = (OneHotEncoder, OrdinalEncoder)
    found: list[tuple[Any, list]] = []
    if isinstance(estimator, Pipeline):
        for _, step in estimator.steps:
            found += _encoders(step)
    elif isinstance(estimator, ColumnTransformer):
        for _, transformer, columns in getattr(estimator, "transformers_", []):
            if isinstance(transformer, encoders):
                found.append((transformer, list(np.atleast_1d(columns))))
            elif isinstance(transformer, Pipeline):
                for _, step in transformer.steps:
                    if isinstance(step, encoders):
                        found.append((step, list(np.atleast_1d(columns))))
    return found


def _category_map(estimator: Any, names: list[str]) -> dict[str, list[str]]:
    categories: dict[str, list[str]] = {}
    for encoder, columns in _encoders(estimator):
        for column, values in zip(columns, encoder.categories_, strict=False):
            name = names[column] if isinstance(column, (int, np.integer)) else str(column)
            categories[name] = [str(v) for v in values]
    return categories


def feature_names(estimator: Any) -> list[str]:
    names = getattr(estimator, "feature_names_in_", None)
    if names is not None:
        return [str(n) for n in names]
    count = getattr(estimator, "n_features_in_", None)
    if count is None:
        raise ValueError("cannot tell the estimator's input features; give input_schema")
    return [f"x{i}" for i in range(int(count))]


def infer_schema(estimator: Any, sample: Any = None) -> dict:
    """Derive the input schema: categories from encoders, numeric ranges from a training sample."""
    names = feature_names(estimator)
    categories = _category_map(estimator, names)
    features = []
    for index, name in enumerate(names):
        if name in categories:
            features.append({"name": name, "type": "category", "categories": categories[name]})
            continue
        feature: dict[str, Any] = {"name": name, "type": "number"}
        if sample is not None:
            column = sample[name] if hasattr(sample, "columns") else np.asarray(sample)[:, index]
            values = np.asarray(column, dtype=float)
            feature["minimum"] = float(np.nanmin(values))
            feature["maximum"] = float(np.nanmax(values))
        features.append(feature)
    return {"features": features}


def check_schema(schema: Any) -> dict:
    """Validate an explicitly given schema's shape; raises ValueError with what is wrong."""
    if not isinstance(schema, dict) or not isinstance(schema.get("features"), list):
        raise ValueError('input_schema must be {"features": [...]}')
    seen = set()
    for feature in schema["features"]:
        name = feature.get("name") if isinstance(feature, dict) else None
        if not isinstance(name, str) or not name or name in seen:
            raise ValueError("every feature needs a unique, non-empty name")
        seen.add(name)
        if feature.get("type") == "category":
            cats = feature.get("categories")
            if not isinstance(cats, list) or not cats or not all(isinstance(c, str) for c in cats):
                raise ValueError(f"{name}: categories must be a non-empty list of strings")
        elif feature.get("type") == "number":
            for bound in ("minimum", "maximum"):
                value = feature.get(bound)
                if value is not None and not isinstance(value, (int, float)):
                    raise ValueError(f"{name}: {bound} must be a number")
        else:
            raise ValueError(f"{name}: type must be 'number' or 'category'")
    return schema


def describe_output(estimator: Any, task: str) -> dict:
    if task == Task.CLASSIFICATION:
        classes = [c.item() if hasattr(c, "item") else c for c in estimator.classes_]
        has_proba = hasattr(estimator, "predict_proba")
        return {"type": "label", "classes": classes, "probabilities": has_proba}
    return {"type": "number"}
