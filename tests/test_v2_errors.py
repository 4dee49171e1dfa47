"""Malformed Open Inference Protocol requests get 400 with the protocol's `{"error"}` body."""

from __future__ import annotations

import struct

import numpy as np
import orjson
import pytest

from tests.support.problems import assert_problem as assert_error

pytestmark = pytest.mark.django_db

IRIS = "/v2/models/iris/infer"
HOUSE = "/v2/models/house-price/infer"
ROW = [5.1, 3.5, 1.4, 0.2]


def infer(client, url, header: dict, key, binary: bytes = b"", *, raw: bytes | None = None):
    """POST like tritonclient: no Content-Type; binary tensors after the JSON header."""
    body = orjson.dumps(header)
    extra = {"HTTP_INFERENCE_HEADER_CONTENT_LENGTH": str(len(body))} if binary else {}
    payload = raw if raw is not None else body + binary
    return client.generic("POST", url, payload, content_type="", HTTP_X_API_KEY=key, **extra)


def tensor(data, shape, datatype="FP32", name="input"):
    return {"name": name, "shape": shape, "datatype": datatype, "data": data}


def test_json_tensor_infer_works_with_no_content_type(client, demo_models, api_key):
    header = {"id": "abc", "inputs": [tensor([ROW, [6.3, 3.3, 6.0, 2.5]], [2, 4])]}
    response = infer(client, IRIS, header, api_key)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["id"] == "abc" and body["model_name"] == "iris"
    assert body["outputs"][0] == {
        "name": "predict",
        "datatype": "BYTES",
        "shape": [2],
        "data": ["setosa", "virginica"],
    }
    assert body["outputs"][1]["name"] == "predict_proba"


@pytest.mark.parametrize(
    ("inputs", "why"),
    [
        ([tensor(ROW, [2, 4])], "shape says 8 values, data has 4"),
        ([tensor(ROW + ROW, [1, 4])], "data longer than shape"),
        ([tensor(ROW, [1, 3])], "wrong width"),
        ([tensor(ROW, [4])], "one dimension"),
        ([tensor(ROW, [1, 4], "FP128")], "unknown datatype"),
        ([tensor(ROW, [1, 4], "INT64")], "unsupported datatype"),
        ([tensor(["a", "b", "c", "d"], [1, 4], "BYTES")], "BYTES for a numeric model"),
        ([tensor(ROW, "1x4")], "shape not a list"),
        ([tensor(ROW, [1, -4])], "negative dimension"),
        ([{"name": "input", "shape": [1, 4], "datatype": "FP32"}], "no data"),
        ([], "no inputs"),
        ("input", "inputs not a list"),
        ([tensor(ROW, [1, 4]), tensor(ROW, [1, 4])], "two inputs with one name"),
    ],
)
def test_malformed_tensors_are_400(client, demo_models, api_key, inputs, why):
    assert_error(infer(client, IRIS, {"inputs": inputs}, api_key), 400, "validation_error")


@pytest.mark.parametrize("value", ["NaN", True, "5.1", None, 51.0])
def test_tensor_values_get_the_same_validation_as_v1(client, demo_models, api_key, value):
    raw = orjson.dumps({"inputs": [tensor([5.1, 3.5, 1.4, 0.0], [1, 4])]}).replace(
        b"0.0]", orjson.dumps(value) + b"]" if value != "NaN" else b"NaN]"
    )
    assert_error(infer(client, IRIS, {}, api_key, raw=raw), 400, "validation_error")


def binary_iris(rows: np.ndarray, size: int | None = None) -> tuple[dict, bytes]:
    blob = rows.astype("<f4").tobytes()
    spec = {
        "name": "input",
        "shape": list(rows.shape),
        "datatype": "FP32",
        "parameters": {"binary_data_size": len(blob) if size is None else size},
    }
    return {"inputs": [spec]}, blob


def test_binary_tensors_and_binary_outputs_round_trip(client, demo_models, api_key):
    header, blob = binary_iris(np.array([ROW]))
    header["parameters"] = {"binary_data_output": True}
    response = infer(client, IRIS, header, api_key, blob)
    assert response.status_code == 200
    length = int(response["Inference-Header-Content-Length"])
    meta = orjson.loads(response.content[:length])
    sizes = [o["parameters"]["binary_data_size"] for o in meta["outputs"]]
    tail = response.content[length:]
    assert len(tail) == sum(sizes)
    (label_len,) = struct.unpack_from("<I", tail)
    assert tail[4 : 4 + label_len] == b"setosa"


@pytest.mark.parametrize(
    "damage", ["truncated", "size-larger-than-body", "extra-bytes", "header-length-too-big"]
)
def test_truncated_or_inconsistent_binary_payloads_are_400(client, demo_models, api_key, damage):
    header, blob = binary_iris(np.array([ROW, ROW]))
    if damage == "truncated":
        blob = blob[:-3]
        header["inputs"][0]["parameters"]["binary_data_size"] = len(blob)
    elif damage == "size-larger-than-body":
        header["inputs"][0]["parameters"]["binary_data_size"] = len(blob) + 8
    elif damage == "extra-bytes":
        blob += b"\0\0\0\0"
    if damage == "header-length-too-big":
        body = orjson.dumps(header) + blob
        response = client.generic(
            "POST",
            IRIS,
            body,
            content_type="",
            HTTP_X_API_KEY=api_key,
            HTTP_INFERENCE_HEADER_CONTENT_LENGTH=str(len(body) + 1),
        )
    else:
        response = infer(client, IRIS, header, api_key, blob)
    assert_error(response, 400, "validation_error")


def test_binary_nan_is_a_validation_error(client, demo_models, api_key):
    header, blob = binary_iris(np.array([[5.1, np.nan, 1.4, 0.2]]))
    assert_error(infer(client, IRIS, header, api_key, blob), 400, "validation_error")


def test_truncated_binary_bytes_tensor_is_400(client, demo_models, api_key):
    blob = struct.pack("<I", 5) + b"D"  # claims 5 bytes, has 1
    inputs = [
        {
            "name": "property_type",
            "shape": [1],
            "datatype": "BYTES",
            "parameters": {"binary_data_size": len(blob)},
        },
        tensor(["N"], [1], "BYTES", "old_new"),
        tensor(["F"], [1], "BYTES", "duration"),
    ]
    assert_error(infer(client, HOUSE, {"inputs": inputs}, api_key, blob), 400, "validation_error")


@pytest.mark.parametrize(
    "inputs",
    [
        [tensor(["D"], [1], "BYTES", "property_type"), tensor(["N"], [1], "BYTES", "old_new")],
        [
            tensor(["D"], [1], "BYTES", "property_type"),
            tensor(["N"], [1], "BYTES", "old_new"),
            tensor(["F"], [1], "BYTES", "duration"),
            tensor(["x"], [1], "BYTES", "colour"),
        ],
        [
            tensor(["D"], [1], "BYTES", "property_type"),
            tensor(["N", "Y"], [2], "BYTES", "old_new"),
            tensor(["F"], [1], "BYTES", "duration"),
        ],
        [
            tensor([1.0], [1], "FP32", "property_type"),
            tensor(["N"], [1], "BYTES", "old_new"),
            tensor(["F"], [1], "BYTES", "duration"),
        ],
        [
            tensor(["Q"], [1], "BYTES", "property_type"),
            tensor(["N"], [1], "BYTES", "old_new"),
            tensor(["F"], [1], "BYTES", "duration"),
        ],
        [
            tensor(["D"], [1, 2], "BYTES", "property_type"),
            tensor(["N"], [1], "BYTES", "old_new"),
            tensor(["F"], [1], "BYTES", "duration"),
        ],
    ],
    ids=["missing", "unknown", "ragged", "wrong-datatype", "unknown-category", "bad-shape"],
)
def test_string_model_inputs_must_match_its_features(client, demo_models, api_key, inputs):
    assert_error(infer(client, HOUSE, {"inputs": inputs}, api_key), 400, "validation_error")


def test_unknown_requested_output_is_400(client, demo_models, api_key):
    header = {"inputs": [tensor(ROW, [1, 4])], "outputs": [{"name": "logits"}]}
    assert_error(infer(client, IRIS, header, api_key), 400, "validation_error")


@pytest.mark.parametrize("raw", [b"{", b"", b"[1, 2", b"\xff\xfe"])
def test_unparsable_v2_body_is_invalid_json(client, demo_models, api_key, raw):
    assert_error(infer(client, IRIS, {}, api_key, raw=raw), 400, "invalid_json")


def test_v2_unknown_model_and_version_are_404(client, demo_models, api_key):
    header = {"inputs": [tensor(ROW, [1, 4])]}
    assert_error(infer(client, "/v2/models/nope/infer", header, api_key), 404, "not_found")
    url = "/v2/models/iris/versions/7/infer"
    assert_error(infer(client, url, header, api_key), 404, "not_found")


def test_kserve_v1_alias_predicts_and_refuses_bad_input(client, demo_models, api_key):
    url = "/v1/models/iris:predict"
    ok = client.post(
        url, {"instances": [ROW]}, content_type="application/json", HTTP_X_API_KEY=api_key
    )
    assert ok.status_code == 200 and ok.json() == {"predictions": ["setosa"]}
    bad = client.post(
        url, {"instances": [ROW[:3]]}, content_type="application/json", HTTP_X_API_KEY=api_key
    )
    assert_error(bad, 400, "validation_error")
    assert_error(
        client.post(url, "{", content_type="application/json", HTTP_X_API_KEY=api_key),
        400,
        "invalid_json",
    )


def test_v2_health_bodies(client, demo_models):
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert client.get("/v2").json()["extensions"] == ["binary_tensor_data"]


def test_v2_model_ready_is_503_when_its_artifact_fails_verification(client, demo_models, api_key):
    from predictions.inference import clear_cache
    from predictions.models import ModelVersion

    assert client.get("/v2/models/iris/ready", HTTP_X_API_KEY=api_key).json()["ready"] is True
    ModelVersion.objects.filter(model__name="iris").update(onnx_sha256="0" * 64)
    clear_cache()
    response = client.get("/v2/models/iris/ready", HTTP_X_API_KEY=api_key)
    assert_error(response, 503, "model_unavailable")
    response = client.get("/v2/health/ready")
    assert response.status_code == 503 and response.json() == {"ready": False}


def test_v2_readiness_without_a_database_is_503_ready_false(client, demo_models, monkeypatch):
    from django.db import OperationalError

    from predictions import protocol_views

    def no_database():
        raise OperationalError("connection refused")

    monkeypatch.setattr(protocol_views, "models_ready", no_database)
    response = client.get("/v2/health/ready")
    assert response.status_code == 503 and response.json() == {"ready": False}
    assert client.get("/v2/health/live").json() == {"live": True}
