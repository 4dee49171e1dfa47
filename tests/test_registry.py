"""Model registry: safe artifacts, hashes, schemas, runtimes, defaults, command and admin."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import skops.io as sio
from django.core.management import CommandError, call_command
from django.db import IntegrityError, transaction
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder

from predictions import artifacts
from predictions.demo import train_iris
from predictions.errors import ModelUnavailable
from predictions.inference import clear_cache, get_predictor
from predictions.models import MLModel, ModelVersion
from predictions.registry import RegistryError, register_model_version, set_default_version

pytestmark = pytest.mark.django_db


def _double(x):
    return x * 2


@pytest.fixture
def linear():
    rng = np.random.default_rng(1)
    X = rng.uniform(0, 10, (200, 3))
    return LinearRegression().fit(X, X @ [1.0, 2.0, 3.0] + 4.0), X


def test_registered_version_stores_skops_and_onnx_with_their_sha256(linear):
    model, X = linear
    mv = register_model_version(name="lin", estimator=model, sample=X)
    skops_bytes = artifacts.absolute(mv.artifact).read_bytes()
    assert mv.artifact.endswith(".skops") and hashlib.sha256(skops_bytes).hexdigest() == mv.sha256
    onnx_bytes = artifacts.absolute(mv.onnx_artifact).read_bytes()
    assert hashlib.sha256(onnx_bytes).hexdigest() == mv.onnx_sha256
    assert mv.runtime == "onnx" and mv.is_default and mv.version == "1"


def test_numeric_ranges_come_from_the_training_sample(linear):
    model, X = linear
    mv = register_model_version(name="lin", estimator=model, sample=X)
    first = mv.input_schema["features"][0]
    assert first["type"] == "number" and first["name"] == "x0"
    assert first["minimum"] == pytest.approx(X[:, 0].min())
    assert first["maximum"] == pytest.approx(X[:, 0].max())


def test_one_hot_categories_are_derived_from_the_pipeline():
    import pandas as pd

    frame = pd.DataFrame({"colour": ["red", "blue", "red", "green"] * 10, "n": range(40)})
    pipe = Pipeline(
        [
            (
                "ct",
                ColumnTransformer([("oh", OneHotEncoder(), ["colour"])], remainder="passthrough"),
            ),
            ("lr", LinearRegression()),
        ]
    ).fit(frame, np.arange(40.0))
    mv = register_model_version(name="colours", estimator=pipe, sample=frame)
    features = {f["name"]: f for f in mv.input_schema["features"]}
    assert features["colour"] == {
        "name": "colour",
        "type": "category",
        "categories": ["blue", "green", "red"],
    }
    assert features["n"]["type"] == "number" and features["n"]["maximum"] == 39


def test_estimator_onnx_cannot_convert_falls_back_to_sklearn_with_a_note():
    """A FunctionTransformer with a custom function has no ONNX converter."""
    X = np.random.default_rng(0).uniform(0, 1, (50, 2))
    pipe = Pipeline([("f", FunctionTransformer(np.log1p)), ("lr", LinearRegression())])
    pipe.fit(X, X.sum(axis=1))
    mv = register_model_version(name="logs", estimator=pipe, sample=X)
    assert mv.runtime == "sklearn" and mv.onnx_artifact == ""
    assert "conversion failed" in mv.runtime_note
    predictor = get_predictor("logs")
    assert predictor.runtime == "sklearn"
    expected = pipe.predict(X[:3])
    np.testing.assert_allclose(predictor.predict(X[:3].T.tolist()).predictions, expected)


def test_skops_file_with_a_type_outside_the_allow_list_is_refused(tmp_path):
    X = np.arange(20.0).reshape(10, 2)
    pipe = Pipeline([("f", FunctionTransformer(_double)), ("lr", LinearRegression())]).fit(
        X, X[:, 0]
    )
    path = tmp_path / "evil.skops"
    sio.dump(pipe, path)
    with pytest.raises(RegistryError, match="untrusted"):
        register_model_version(name="evil", artifact_path=path)
    assert not MLModel.objects.exists()


@pytest.mark.parametrize("content", [b"\x80\x04K\x01.", b"not a zip at all", b""])
def test_pickles_and_garbage_are_not_skops_files(tmp_path, content):
    path = tmp_path / "model.skops"
    path.write_bytes(content)
    with pytest.raises(RegistryError):
        register_model_version(name="bad", artifact_path=path)


def test_register_model_command_reads_a_skops_file(tmp_path, capsys):
    iris, _ = train_iris()
    path = tmp_path / "iris.skops"
    sio.dump(iris, path)
    call_command("register_model", "flowers", str(path), "--version", "7", "--default")
    mv = ModelVersion.objects.get(model__name="flowers")
    assert mv.version == "7" and mv.is_default and mv.runtime == "onnx"
    assert mv.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert "registered flowers:7" in capsys.readouterr().out
    with pytest.raises(CommandError, match="already has a version 7"):
        call_command("register_model", "flowers", str(path), "--version", "7")


def test_register_model_command_refuses_untrusted_files(tmp_path):
    X = np.arange(20.0).reshape(10, 2)
    pipe = Pipeline([("f", FunctionTransformer(_double)), ("lr", LinearRegression())]).fit(
        X, X[:, 0]
    )
    sio.dump(pipe, tmp_path / "evil.skops")
    with pytest.raises(CommandError, match="untrusted"):
        call_command("register_model", "evil", str(tmp_path / "evil.skops"))


def test_the_database_allows_one_default_version_per_model(linear):
    model, X = linear
    register_model_version(name="lin", estimator=model, sample=X)
    second = register_model_version(name="lin", estimator=model, sample=X)
    assert not second.is_default
    with pytest.raises(IntegrityError), transaction.atomic():
        ModelVersion.objects.filter(pk=second.pk).update(is_default=True)
    set_default_version(model_version=second)
    assert list(ModelVersion.objects.filter(is_default=True).values_list("version", flat=True)) == [
        "2"
    ]


def test_a_task_change_or_a_bad_name_is_refused(linear):
    model, X = linear
    register_model_version(name="lin", estimator=model, sample=X)
    iris, schema = train_iris()
    with pytest.raises(RegistryError, match="regression"):
        register_model_version(name="lin", estimator=iris, input_schema=schema)
    with pytest.raises(RegistryError, match="letters"):
        register_model_version(name="no spaces/please", estimator=iris, input_schema=schema)


def test_the_artifact_hash_is_checked_on_every_load(linear):
    model, X = linear
    mv = register_model_version(name="lin", estimator=model, sample=X)
    path = artifacts.absolute(mv.onnx_artifact)
    path.write_bytes(path.read_bytes() + b"tampered")
    clear_cache()
    with pytest.raises(ModelUnavailable):
        get_predictor("lin")


def test_bootstrap_demo_is_idempotent(capsys):
    call_command("bootstrap_demo")
    call_command("bootstrap_demo")
    assert sorted(MLModel.objects.values_list("name", flat=True)) == ["house-price", "iris"]
    assert "nothing to do" in capsys.readouterr().out


def test_admin_upload_registers_a_version_and_set_default_switches(admin_client, tmp_path):
    from django.core.files.uploadedfile import SimpleUploadedFile

    iris, _ = train_iris()
    data = sio.dumps(iris)
    form = {
        "model_name": "flowers",
        "version_label": "",
        "make_default": "on",
        "expected_sha256": hashlib.sha256(data).hexdigest(),
        "description": "d",
    }
    for _ in range(2):
        upload = SimpleUploadedFile("iris.skops", data)
        response = admin_client.post(
            "/admin/predictions/modelversion/add/", form | {"artifact_file": upload}
        )
        assert response.status_code == 302, response.content[:2000]
    assert ModelVersion.objects.get(is_default=True, model__name="flowers").version == "2"
    first = ModelVersion.objects.get(model__name="flowers", version="1")
    admin_client.post(
        "/admin/predictions/modelversion/",
        {"action": "make_default", "_selected_action": [first.pk]},
    )
    assert ModelVersion.objects.get(is_default=True, model__name="flowers").version == "1"


@pytest.mark.parametrize("problem", ["wrong-hash", "pickle-name", "untrusted"])
def test_admin_upload_refuses_bad_files(admin_client, problem):
    from django.core.files.uploadedfile import SimpleUploadedFile

    iris, _ = train_iris()
    data, name, digest = sio.dumps(iris), "iris.skops", ""
    if problem == "wrong-hash":
        digest = "0" * 64
    elif problem == "pickle-name":
        name = "iris.pkl"
    else:
        X = np.arange(20.0).reshape(10, 2)
        pipe = Pipeline([("f", FunctionTransformer(_double)), ("lr", LinearRegression())])
        data = sio.dumps(pipe.fit(X, X[:, 0]))
    response = admin_client.post(
        "/admin/predictions/modelversion/add/",
        {
            "model_name": "flowers",
            "expected_sha256": digest,
            "artifact_file": SimpleUploadedFile(name, data),
        },
    )
    assert response.status_code == 200  # the form again, with the error
    assert not ModelVersion.objects.exists()


def test_a_pipeline_classifier_is_served_right_whichever_runtime_wins():
    """float32 scaling in ONNX may flip a label near a split: then scikit-learn serves it."""
    from sklearn.datasets import load_iris
    from sklearn.preprocessing import StandardScaler

    data = load_iris()
    forest = RandomForestClassifier(n_estimators=10, random_state=0)
    pipe = Pipeline([("s", StandardScaler()), ("rf", forest)]).fit(data.data, data.target)
    mv = register_model_version(name="scaled", estimator=pipe, sample=data.data)
    assert mv.runtime == "onnx" or "differ" in mv.runtime_note
    result = get_predictor("scaled").predict(data.data.T.tolist(), probabilities=True)
    assert result.predictions == pipe.predict(data.data).tolist()
    np.testing.assert_allclose(result.probabilities, pipe.predict_proba(data.data), atol=1e-5)


def test_a_classifier_without_predict_proba_never_returns_probabilities(client, api_key):
    from sklearn.datasets import load_iris
    from sklearn.svm import LinearSVC

    data = load_iris()
    svc = LinearSVC(random_state=0).fit(data.data, data.target)
    register_model_version(name="svc", estimator=svc, sample=data.data)
    body = {"instances": data.data[:2].tolist(), "parameters": {"probabilities": True}}
    reply = client.post(
        "/api/v1/models/svc/predict", body, content_type="application/json", HTTP_X_API_KEY=api_key
    ).json()
    assert reply["predictions"] == svc.predict(data.data[:2]).tolist()
    assert "probabilities" not in reply
    meta = client.get("/v2/models/svc", HTTP_X_API_KEY=api_key).json()
    assert [o["name"] for o in meta["outputs"]] == ["predict"]


@pytest.mark.parametrize(
    "schema",
    [
        {"features": [{"name": "a", "type": "number"}]},
        {"features": [{"name": n, "type": "number"} for n in ("x0", "x1", "x1")]},
        {"features": [{"name": n, "type": "text"} for n in ("x0", "x1", "x2")]},
        {
            "features": [
                {"name": "x0", "type": "category", "categories": []},
                {"name": "x1", "type": "number"},
                {"name": "x2", "type": "number"},
            ]
        },
        {
            "features": [
                {"name": "x0", "type": "number", "minimum": "0"},
                {"name": "x1", "type": "number"},
                {"name": "x2", "type": "number"},
            ]
        },
        {"columns": []},
    ],
    ids=["arity", "duplicate", "type", "no-categories", "text-bound", "shape"],
)
def test_an_explicit_schema_that_does_not_fit_is_refused(linear, schema):
    model, _ = linear
    with pytest.raises(RegistryError):
        register_model_version(name="lin", estimator=model, input_schema=schema)


def test_explicit_feature_names_must_match_a_dataframe_fitted_estimator():
    from predictions.demo import train_house_price

    pipeline, _ = train_house_price()
    schema = {
        "features": [
            {"name": n, "type": "category", "categories": ["a"]}
            for n in ("kind", "old_new", "duration")
        ]
    }
    with pytest.raises(RegistryError, match="property_type"):
        register_model_version(name="hp", estimator=pipeline, input_schema=schema)
