"""Inference internals: warm cache, deadlines, batch-row validation, readiness, metrics."""

from __future__ import annotations

import time

import numpy as np
import onnxruntime as ort
import pytest
from prometheus_client import REGISTRY

from predictions.errors import PredictionTimeout
from predictions.inference import clear_cache, get_predictor, models_ready
from predictions.models import ModelVersion
from predictions.runtimes import WATCHDOG, SklearnRunner
from predictions.validation import validate_instances, validate_rows

pytestmark = pytest.mark.django_db
ROW = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


def test_a_warm_predictor_costs_no_query(demo_models, django_assert_num_queries):
    get_predictor("iris")
    get_predictor("house-price", "1")
    with django_assert_num_queries(0):
        for _ in range(50):
            get_predictor("iris").predict([[5.1], [3.5], [1.4], [0.2]])
            get_predictor("house-price", "1")


def test_onnx_sessions_use_one_thread(demo_models):
    options = get_predictor("iris").runner.session.get_session_options()
    assert options.intra_op_num_threads == 1 and options.inter_op_num_threads == 1


def test_a_prediction_past_its_deadline_raises_prediction_timeout(demo_models):
    with pytest.raises(PredictionTimeout):
        get_predictor("iris").predict([[5.1], [3.5], [1.4], [0.2]], timeout=0.0)


def test_the_watchdog_terminates_onnx_runs_whose_deadline_passed():
    options = ort.RunOptions()
    WATCHDOG.watch(options, time.monotonic() - 1)
    for _ in range(500):  # the watchdog thread runs within milliseconds
        if options.terminate:
            break
        time.sleep(0.01)
    assert options.terminate


def test_a_slow_sklearn_prediction_frees_the_caller_at_its_deadline(demo_models):
    from predictions.demo import train_iris

    iris, schema = train_iris()
    runner = SklearnRunner(iris, schema["features"], "classification")
    columns = np.random.default_rng(0).uniform(0, 8, (4, 20_000)).tolist()
    with pytest.raises(PredictionTimeout):
        runner.run(columns, deadline=time.monotonic())


def test_models_ready_reports_a_default_version_that_cannot_load(demo_models):
    assert models_ready() == (True, "ok")
    ModelVersion.objects.filter(model__name="iris").update(onnx_artifact="models/missing.onnx")
    clear_cache()
    ready, detail = models_ready()
    assert not ready and "iris" in detail


def test_validate_rows_fails_bad_rows_alone_and_parses_csv_numbers(demo_models):
    features = get_predictor("iris").schema
    rows = [
        {k: str(v) for k, v in ROW.items()},  # CSV cells are strings
        ROW | {"petal_length": "abc"},
        ROW | {"petal_length": "nan"},
        {k: v for k, v in ROW.items() if k != "sepal_width"},
        ROW | {"colour": "red"},
        ROW | {"petal_width": ""},
        ROW,
    ]
    columns, ok, errors = validate_rows(features, rows, coerce_strings=True)
    assert ok == [0, 6]
    assert sorted(errors) == [1, 2, 3, 4, 5]
    assert errors[1].startswith("petal_length: must be a number")
    assert "sepal_width" in errors[3] and "colour: unknown feature" in errors[4]
    assert columns[2] == [1.4, 1.4]
    assert get_predictor("iris").predict(columns).predictions == ["setosa", "setosa"]


def test_fast_and_slow_validation_paths_agree(demo_models):
    features = get_predictor("iris").schema
    clean = [ROW, list(ROW.values()), ROW | {"sepal_length": 7}]
    columns = validate_instances(features, clean, max_instances=10)
    assert columns[0] == [5.1, 5.1, 7]
    _, ok, _ = validate_rows(features, clean)
    assert ok == [0, 1, 2]


def test_predictions_are_counted_per_model_in_prometheus(client, demo_models, api_key):
    def sample(name):
        return REGISTRY.get_sample_value(name, {"model": "iris"}) or 0

    before = sample("mlapi_predictions_total")
    hist_before = sample("mlapi_predict_latency_seconds_count")
    client.post(
        "/api/v1/models/iris/predict",
        {"instances": [ROW, ROW]},
        content_type="application/json",
        HTTP_X_API_KEY=api_key,
    )
    assert sample("mlapi_predictions_total") == before + 2
    assert sample("mlapi_predict_latency_seconds_count") == hist_before + 1
