"""LightGBM and XGBoost estimators (bare and in pipelines): stored safely, served through ONNX,
and answering like the library itself on v1, V2 REST and batch jobs (within 1e-5)."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from lightgbm import LGBMClassifier, LGBMRegressor
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder
from xgboost import XGBClassifier, XGBRegressor

from predictions.jobs.runner import run_batch_job
from predictions.models import BatchJob, JobStatus
from predictions.registry import RegistryError, register_model_version
from tests.conftest import make_subscriber_key
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
KINDS = ["flat", "house", "villa"]


def homes(rows: int = 300, seed: int = 7) -> tuple[pd.DataFrame, np.ndarray]:
    """A small seeded table: two numbers, one category, and a price."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "size": rng.uniform(20, 200, rows).round(1),
            "age": rng.uniform(0, 80, rows).round(0),
            "kind": rng.choice(KINDS, rows),
        }
    )
    premium = frame["kind"].map({"flat": 0, "house": 20_000, "villa": 90_000}).to_numpy()
    price = frame["size"] * 1000 - frame["age"] * 300 + premium + rng.normal(0, 5000, rows)
    return frame, price.to_numpy()


def pipeline(estimator) -> Pipeline:
    encode = ColumnTransformer([("kind", OneHotEncoder(), ["kind"])], remainder="passthrough")
    return Pipeline([("encode", encode), ("model", estimator)])


def lightgbm_classifier_pipeline() -> tuple[Pipeline, pd.DataFrame]:
    frame, price = homes()
    labels = np.where(price > np.median(price), "dear", "cheap")
    model = pipeline(LGBMClassifier(n_estimators=30, random_state=0, verbose=-1))
    return model.fit(frame, labels), frame


def xgboost_regressor_pipeline() -> tuple[Pipeline, pd.DataFrame]:
    frame, price = homes()
    return pipeline(XGBRegressor(n_estimators=30, random_state=0)).fit(frame, price), frame


def rows_of(frame: pd.DataFrame, n: int = 40) -> list[dict]:
    return frame.sample(n, random_state=1).to_dict(orient="records")


def v2_body(rows: list[dict]) -> dict:
    inputs = []
    for name in ("size", "age", "kind"):
        values = [row[name] for row in rows]
        datatype = "BYTES" if name == "kind" else "FP64"
        inputs.append({"name": name, "shape": [len(rows), 1], "datatype": datatype, "data": values})
    return {"inputs": inputs}


def post(client, url: str, body: dict, key: str):
    return client.post(url, body, content_type="application/json", HTTP_X_API_KEY=key)


def run_job(client, key: str, name: str, rows: list[dict]) -> list[str]:
    reply = post(client, "/api/v1/jobs", {"model": name, "instances": rows}, key)
    assert reply.status_code == 202, reply.content
    run_batch_job(job_id=reply.json()["id"])  # the task's body, as a worker runs it
    job = BatchJob.objects.get(pk=reply.json()["id"])
    assert job.status == JobStatus.SUCCEEDED, job.error
    text = b"".join(client.get(f"/api/v1/jobs/{job.pk}/results", HTTP_X_API_KEY=key)
                    .streaming_content).decode()  # fmt: skip
    import csv

    return [r["prediction"] for r in csv.DictReader(io.StringIO(text))]


@pytest.fixture
def key(db) -> str:
    return make_subscriber_key()[1]


def test_a_lightgbm_pipeline_answers_like_lightgbm_on_v1_v2_and_jobs(client, key, settings):
    settings.MLAPI_USAGE_MODE = "sync"
    model, frame = lightgbm_classifier_pipeline()
    mv = register_model_version(name="homes-lgbm", estimator=model, sample=frame)
    assert mv.runtime == "onnx", mv.runtime_note
    assert mv.metadata["estimator"] == "Pipeline"
    rows = rows_of(frame)
    expected = model.predict(pd.DataFrame(rows)).tolist()
    expected_proba = model.predict_proba(pd.DataFrame(rows))
    body = {"instances": rows, "parameters": {"probabilities": True}}
    v1 = post(client, "/api/v1/models/homes-lgbm/predict", body, key).json()
    assert v1["predictions"] == expected
    np.testing.assert_allclose(v1["probabilities"], expected_proba, rtol=1e-5, atol=1e-6)
    v2 = post(client, "/v2/models/homes-lgbm/infer", v2_body(rows), key).json()
    assert v2["outputs"][0]["data"] == expected
    np.testing.assert_allclose(
        np.reshape(v2["outputs"][1]["data"], (len(rows), 2)), expected_proba, rtol=1e-5, atol=1e-6
    )
    assert run_job(client, key, "homes-lgbm", rows) == expected


def test_an_xgboost_pipeline_answers_like_xgboost_on_v1_v2_and_jobs(client, key, settings):
    settings.MLAPI_USAGE_MODE = "sync"
    model, frame = xgboost_regressor_pipeline()
    mv = register_model_version(name="homes-xgb", estimator=model, sample=frame)
    assert mv.runtime == "onnx", mv.runtime_note
    rows = rows_of(frame)
    expected = model.predict(pd.DataFrame(rows)).astype(float)
    v1 = post(client, "/api/v1/models/homes-xgb/predict", {"instances": rows}, key).json()
    np.testing.assert_allclose(v1["predictions"], expected, rtol=1e-5)
    v2 = post(client, "/v2/models/homes-xgb/infer", v2_body(rows), key).json()
    np.testing.assert_allclose(v2["outputs"][0]["data"], expected, rtol=1e-5)
    job = [float(p) for p in run_job(client, key, "homes-xgb", rows)]
    np.testing.assert_allclose(job, expected, rtol=1e-5)


@pytest.mark.parametrize(
    "estimator",
    [
        LGBMRegressor(n_estimators=20, verbose=-1),
        XGBClassifier(n_estimators=20),
        LGBMClassifier(n_estimators=20, verbose=-1),
        XGBRegressor(n_estimators=20),
    ],
    ids=lambda e: type(e).__name__,
)
def test_bare_boosters_convert_to_onnx_and_agree(client, key, estimator):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(200, 4))
    y = X[:, 0] * 2 + X[:, 1] if "Regressor" in type(estimator).__name__ else (X[:, 0] > 0) * 1
    estimator.fit(X, y)
    mv = register_model_version(name="bare", estimator=estimator, sample=X)
    assert mv.runtime == "onnx", mv.runtime_note
    reply = post(client, "/api/v1/models/bare/predict", {"instances": X[:20].tolist()}, key)
    np.testing.assert_allclose(reply.json()["predictions"], estimator.predict(X[:20]), rtol=1e-5)


def test_an_uploaded_booster_skops_file_registers_with_its_types_trusted(demo_models):
    model, _ = xgboost_regressor_pipeline()
    staff = APIClient()
    access = RefreshToken.for_user(UserFactory(is_staff=True)).access_token
    staff.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    artifact = io.BytesIO(sio.dumps(model))
    artifact.name = "homes.skops"
    reply = staff.post(
        "/api/v1/models/homes/versions", {"artifact": artifact, "version": "1"}, format="multipart"
    )
    assert reply.status_code == 201, reply.content


def _objective(y_true, y_pred):  # a Python callable inside the model: never trusted
    return y_pred - y_true, np.ones_like(y_pred)


def test_a_booster_with_a_custom_python_objective_is_refused(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 3))
    model = LGBMRegressor(n_estimators=5, objective=_objective, verbose=-1).fit(X, X[:, 0])
    path = tmp_path / "custom.skops"
    sio.dump(model, path)
    with pytest.raises(RegistryError, match="untrusted"):
        register_model_version(name="custom", artifact_path=path)
