"""The Open Inference Protocol V2 surface, driven by the real tritonclient.http client."""

from __future__ import annotations

import numpy as np
import pytest
import tritonclient.http as triton
from sklearn.datasets import load_iris
from tritonclient.utils import InferenceServerException

from predictions.demo import IRIS_SPECIES, train_house_price
from tests.conftest import make_subscriber_key

PICKS = [0, 25, 50, 75, 100, 149]


@pytest.fixture
def live(live_server, live_demo_models):
    """(tritonclient, headers with a valid key) against the live test server."""
    _, key = make_subscriber_key()
    url = live_server.url.removeprefix("http://")
    client = triton.InferenceServerClient(url=url, network_timeout=30.0)
    yield client, {"X-API-Key": key}
    client.close()


def iris_input(binary: bool, dtype=np.float32) -> tuple[triton.InferInput, np.ndarray]:
    data = load_iris()
    rows = data.data[PICKS].astype(dtype)
    tensor = triton.InferInput("input", list(rows.shape), "FP32" if dtype == np.float32 else "FP64")
    tensor.set_data_from_numpy(rows, binary_data=binary)
    return tensor, IRIS_SPECIES[data.target[PICKS]]


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_tritonclient_gets_iris_species_and_probabilities(live, binary):
    client, headers = live
    tensor, species = iris_input(binary)
    outputs = [
        triton.InferRequestedOutput("predict", binary_data=binary),
        triton.InferRequestedOutput("predict_proba", binary_data=binary),
    ]
    result = client.infer("iris", [tensor], outputs=outputs, headers=headers, request_id="req-7")
    labels = [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("predict")]
    assert labels == species.tolist()
    proba = result.as_numpy("predict_proba")
    assert proba.shape == (len(PICKS), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-4)
    assert result.get_response()["id"] == "req-7"


def test_fp64_tensor_and_pinned_version_are_accepted(live):
    client, headers = live
    tensor, species = iris_input(False, np.float64)
    result = client.infer("iris", [tensor], model_version="1", headers=headers)
    assert [v.decode() for v in result.as_numpy("predict")] == species.tolist()
    assert result.get_response()["model_version"] == "1"


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
@pytest.mark.parametrize("shape", ["n", "n1"])
def test_house_price_takes_one_bytes_input_per_feature(live, binary, shape):
    client, headers = live
    rows = {
        "property_type": ["D", "F", "T"],
        "old_new": ["N", "Y", "N"],
        "duration": ["F", "L", "F"],
    }
    inputs = []
    for name, values in rows.items():
        array = np.array([v.encode() for v in values], dtype=np.object_)
        if shape == "n1":
            array = array.reshape(-1, 1)
        tensor = triton.InferInput(name, list(array.shape), "BYTES")
        tensor.set_data_from_numpy(array, binary_data=binary)
        inputs.append(tensor)
    output = triton.InferRequestedOutput("predict", binary_data=binary)
    result = client.infer("house-price", inputs, outputs=[output], headers=headers)
    import pandas as pd

    pipeline, _ = train_house_price()
    expected = pipeline.predict(pd.DataFrame(rows))
    np.testing.assert_allclose(result.as_numpy("predict"), expected, rtol=1e-5)


def test_health_server_and_model_metadata_through_tritonclient(live):
    client, headers = live
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.get_server_metadata()["name"] == "mlapi"
    assert client.is_model_ready("iris", headers=headers)
    meta = client.get_model_metadata("house-price", headers=headers)
    assert [i["name"] for i in meta["inputs"]] == ["property_type", "old_new", "duration"]
    assert meta["outputs"][0] == {"name": "predict", "datatype": "FP64", "shape": [-1]}


def test_model_endpoints_need_the_api_key(live):
    client, _ = live
    tensor, _ = iris_input(False)
    with pytest.raises(InferenceServerException) as info:
        client.infer("iris", [tensor])
    assert info.value.status() == "401"


def test_unknown_model_is_404_through_tritonclient(live):
    client, headers = live
    tensor, _ = iris_input(False)
    with pytest.raises(InferenceServerException) as info:
        client.infer("no-such-model", [tensor], headers=headers)
    assert info.value.status() == "404"
