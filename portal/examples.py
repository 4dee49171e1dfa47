"""Ready-to-paste client examples for one model, built from its input schema.

Pure functions of (base URL, model name, schema): the docs page renders them and the tests run
them against a live server, so a snippet that stops working fails a test.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import urlsplit

KEY_VARIABLE = "MLAPI_KEY"


@dataclass(frozen=True)
class Examples:
    """The snippets shown for a model, plus the sample instance they send."""

    instance: dict
    curl: str
    python: str
    triton: str  # tritonclient.http: Open Inference Protocol over REST
    triton_grpc: str  # tritonclient.grpc: the same protocol over gRPC


def sample_value(feature: dict):
    """A valid value for one feature: the middle of its range, or its first category."""
    if feature.get("type") == "category":
        return (feature.get("categories") or [""])[0]
    low, high = feature.get("minimum"), feature.get("maximum")
    if low is not None and high is not None:
        return round((float(low) + float(high)) / 2, 2)
    if low is not None:
        return float(low)
    if high is not None:
        return float(high)
    return 1.0


def sample_instance(features: list[dict], metadata: dict | None = None) -> dict:
    """The version's own example instance if its metadata has one, else one from the schema."""
    example = (metadata or {}).get("example")
    names = [f["name"] for f in features]
    if isinstance(example, dict) and sorted(example) == sorted(names):
        return {name: example[name] for name in names}
    return {f["name"]: sample_value(f) for f in features}


def _curl(base: str, name: str, instance: dict) -> str:
    # Single quotes in the shell: escape any the body itself contains.
    body = json.dumps({"instances": [instance]}).replace("'", "'\\''")
    return (
        f"curl -sS -X POST {base}/api/v1/models/{name}/predict \\\n"
        f'  -H "X-API-Key: ${KEY_VARIABLE}" \\\n'
        '  -H "Content-Type: application/json" \\\n'
        f"  -d '{body}'"
    )


def _python(base: str, name: str, instance: dict, classifier: bool) -> str:
    parameters = ', "parameters": {"probabilities": True}' if classifier else ""
    return (
        "import os\n\nimport requests\n\n"
        "response = requests.post(\n"
        f'    "{base}/api/v1/models/{name}/predict",\n'
        f'    headers={{"X-API-Key": os.environ["{KEY_VARIABLE}"]}},\n'
        # JSON of strings and floats is also valid Python source.
        f'    json={{"instances": [{json.dumps(instance)}]{parameters}}},\n'
        "    timeout=30,\n"
        ")\n"
        "response.raise_for_status()\n"
        'print(response.json()["predictions"])\n'
    )


def _triton(
    target: str, name: str, features: list[dict], instance: dict, *, ssl: bool, grpc: bool
) -> str:
    """A tritonclient snippet: `tritonclient.http` (REST) or `tritonclient.grpc` at `target`."""
    numeric = all(f.get("type") != "category" for f in features)
    module, alias = ("grpc", "grpcclient") if grpc else ("http", "httpclient")
    # gRPC metadata keys are lower-case (HTTP/2); as_json gives the same dict as REST's.
    header, as_json = ("x-api-key", ", as_json=True") if grpc else ("X-API-Key", "")
    head = (
        f"import os\n\nimport numpy as np\nimport tritonclient.{module} as {alias}\n\n"
        f'client = {alias}.InferenceServerClient("{target}", ssl={ssl})\n'
        f'headers = {{"{header}": os.environ["{KEY_VARIABLE}"]}}\n'
        f'metadata = client.get_model_metadata("{name}", headers=headers{as_json})\n'
    )
    if numeric:
        row = ", ".join(repr(float(instance[f["name"]])) for f in features)
        body = (
            f"data = np.array([[{row}]], dtype=np.float32)  # {len(features)} features, "
            "schema order\n"
            f'tensor = {alias}.InferInput(metadata["inputs"][0]["name"], list(data.shape), '
            '"FP32")\n'
            "tensor.set_data_from_numpy(data)\n"
            "inputs = [tensor]\n"
        )
    else:
        body = "inputs = []\n"
        for f in features:
            value = instance[f["name"]]
            if f.get("type") == "category":
                array, dtype = f"np.array([[{str(value)!r}]], dtype=object)", "BYTES"
            else:
                array, dtype = f"np.array([[{float(value)!r}]], dtype=np.float64)", "FP64"
            body += (
                f"data = {array}\n"
                f'tensor = {alias}.InferInput("{f["name"]}", list(data.shape), "{dtype}")\n'
                "tensor.set_data_from_numpy(data)\n"
                "inputs.append(tensor)\n"
            )
    tail = (
        f'result = client.infer("{name}", inputs, headers=headers)\n'
        'print(result.as_numpy(metadata["outputs"][0]["name"]))\n'
    )
    return head + body + tail


def build_examples(
    *,
    base_url: str,
    model_name: str,
    schema: dict,
    classifier: bool,
    metadata: dict | None = None,
    grpc_address: str | None = None,
) -> Examples:
    """The curl, `requests` and tritonclient (HTTP, gRPC) snippets for `model_name`.

    `grpc_address` is `host:port` of the gRPC data plane (default: the base URL's host, 8001).
    """
    base = base_url.rstrip("/")
    parts = urlsplit(base)
    features = list(schema.get("features") or [])
    instance = sample_instance(features, metadata)
    ssl = parts.scheme == "https"
    grpc_target = grpc_address or f"{parts.hostname}:8001"
    return Examples(
        instance=instance,
        curl=_curl(base, model_name, instance),
        python=_python(base, model_name, instance, classifier),
        triton=_triton(parts.netloc, model_name, features, instance, ssl=ssl, grpc=False),
        triton_grpc=_triton(grpc_target, model_name, features, instance, ssl=ssl, grpc=True),
    )
