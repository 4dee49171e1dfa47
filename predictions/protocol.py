"""Open Inference Protocol (KServe/Triton V2) tensors: decode requests, encode responses.

Supports JSON tensors and Triton's binary tensor extension: the body is a JSON header of
`Inference-Header-Content-Length` bytes followed by the raw tensors, in input order, whose
sizes are each input's `parameters.binary_data_size`. BYTES elements are a 4-byte
little-endian length and the bytes. Malformed tensors raise `ValidationError` (400).
"""

from __future__ import annotations

import math
import struct
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
from rest_framework.exceptions import ValidationError

from predictions.validation import NonFinite, parse_json

if TYPE_CHECKING:
    from predictions.inference import Predictor

NUMERIC = {"FP32": np.dtype("<f4"), "FP64": np.dtype("<f8")}
SERVER_NAME = "mlapi"
SERVER_VERSION = "1.0.0"
KNOWN = {"BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
         "FP16", "FP32", "FP64", "BYTES", "BF16"}  # fmt: skip


def _bad(field: str, message: str) -> ValidationError:
    return ValidationError({field: [message]})


def split_body(raw: bytes, header_length: str | None) -> tuple[Any, bytes]:
    """(parsed JSON header, binary tail) of a V2 request body."""
    if header_length is None:
        return parse_json(raw), b""
    try:
        size = int(header_length)
    except ValueError:
        raise _bad("Inference-Header-Content-Length", "must be an integer") from None
    if size < 0 or size > len(raw):
        raise _bad("Inference-Header-Content-Length", "is larger than the body")
    return parse_json(raw[:size]), raw[size:]


def _shape(spec: dict, field: str) -> list[int]:
    shape = spec.get("shape")
    if (
        not isinstance(shape, list)
        or not shape
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise _bad(f"{field}.shape", "must be a non-empty list of non-negative integers")
    return shape


def _flatten(data: Any) -> list:
    if not isinstance(data, list):
        return [data]
    if data and isinstance(data[0], list):
        out: list = []
        for item in data:
            out += _flatten(item)
        return out
    return data


def _decode_bytes(blob: bytes, count: int, field: str) -> list[str]:
    values, offset = [], 0
    for _ in range(count):
        if offset + 4 > len(blob):
            raise _bad(field, "binary BYTES data is truncated")
        (length,) = struct.unpack_from("<I", blob, offset)
        offset += 4
        if offset + length > len(blob):
            raise _bad(field, "binary BYTES data is truncated")
        values.append(blob[offset : offset + length])
        offset += length
    if offset != len(blob):
        raise _bad(field, "binary BYTES data is longer than its shape")
    try:
        return [v.decode() for v in values]
    except UnicodeDecodeError:
        raise _bad(field, "BYTES elements must be UTF-8 text") from None


def binary_values(blob: bytes, datatype: str, count: int, field: str) -> list:
    if datatype == "BYTES":
        return _decode_bytes(blob, count, field)
    dtype = NUMERIC[datatype]
    if len(blob) != count * dtype.itemsize:
        raise _bad(
            field, f"binary data has {len(blob)} bytes; the shape needs {count * dtype.itemsize}"
        )
    values = np.frombuffer(blob, dtype=dtype).astype(np.float64).tolist()
    return [v if math.isfinite(v) else NonFinite(str(v)) for v in values]


def binary_contents(datatype: str, values) -> bytes:
    """A tensor's binary encoding (what `binary_values` reads): V2 REST's binary outputs and
    gRPC's raw contents. Numbers are little-endian FP64; BYTES elements are each led by a 4-byte
    little-endian length. BYTES outputs are labels from a handful of classes, so each distinct
    one is framed once and the join looks the frames up in C (`map`), not per row in Python.
    """
    if datatype != "BYTES":
        return np.asarray(values, dtype="<f8").tobytes()
    frames = {}
    for value in set(values):
        encoded = str(value).encode()
        frames[value] = struct.pack("<I", len(encoded)) + encoded
    return b"".join(map(frames.__getitem__, values))


def _json_values(data: Any, datatype: str, count: int, field: str) -> list:
    values = _flatten(data)
    if len(values) != count:
        raise _bad(f"{field}.data", f"has {len(values)} elements; the shape needs {count}")
    # numbers are checked (type, NaN/Infinity, range) with the schema by validate_instances
    if datatype == "BYTES" and not all(
        isinstance(v, str) and not isinstance(v, NonFinite) for v in values
    ):
        raise _bad(f"{field}.data", "BYTES elements must be strings")
    return values


def decode_inputs(header: Any, binary: bytes) -> dict[str, tuple[str, list[int], list]]:
    """{input name: (datatype, shape, flat values)}; binary tensors are consumed in input order."""
    if not isinstance(header, dict):
        raise ValidationError(["the inference request must be a JSON object"])
    inputs = header.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise _bad("inputs", "must be a non-empty list of tensors")
    decoded, offset = {}, 0
    for index, spec in enumerate(inputs):
        field = f"inputs[{index}]"
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise _bad(field, "must be an object with a name, shape, datatype and data")
        datatype = spec.get("datatype")
        if datatype not in KNOWN:
            raise _bad(f"{field}.datatype", f"unknown datatype {str(datatype)[:20]!r}")
        if datatype not in NUMERIC and datatype != "BYTES":
            raise _bad(f"{field}.datatype", "use FP32 or FP64 for numbers, BYTES for strings")
        shape = _shape(spec, field)
        count = math.prod(shape)
        params = spec.get("parameters") or {}
        size = params.get("binary_data_size") if isinstance(params, dict) else None
        if size is not None:
            if not isinstance(size, int) or size < 0 or offset + size > len(binary):
                raise _bad(field, "binary data is truncated or binary_data_size is wrong")
            values = binary_values(binary[offset : offset + size], datatype, count, field)
            offset += size
        elif "data" in spec:
            values = _json_values(spec["data"], datatype, count, field)
        else:
            raise _bad(f"{field}.data", "is required (or binary_data_size with binary data)")
        if spec["name"] in decoded:
            raise _bad(f"{field}.name", "appears twice")
        decoded[spec["name"]] = (datatype, shape, values)
    if offset != len(binary):
        raise _bad("inputs", "the binary payload is longer than the declared tensors")
    return decoded


def tensors_to_instances(decoded: dict, features: list[dict]) -> list[list]:
    """Array instances in schema order from one [N, F] numeric tensor or one tensor per feature."""
    if all(f["type"] == "number" for f in features) and len(decoded) == 1:
        ((name, (datatype, shape, values)),) = decoded.items()
        if datatype not in NUMERIC:
            raise _bad(f"{name}.datatype", "a numeric model takes one FP32 or FP64 tensor")
        if len(shape) != 2 or shape[1] != len(features):
            raise _bad(f"{name}.shape", f"must be [N, {len(features)}] (features in schema order)")
        width = len(features)
        return [values[i : i + width] for i in range(0, len(values), width)]
    names = [f["name"] for f in features]
    if set(decoded) != set(names):
        raise _bad("inputs", f"expected one tensor per feature, named {', '.join(names)}")
    rows = None
    for feature in features:
        datatype, shape, values = decoded[feature["name"]]
        wanted = "BYTES" if feature["type"] == "category" else "FP32 or FP64"
        if (datatype == "BYTES") != (feature["type"] == "category"):
            raise _bad(f"{feature['name']}.datatype", f"must be {wanted}")
        if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
            raise _bad(f"{feature['name']}.shape", "must be [N] or [N, 1]")
        if rows is not None and shape[0] != rows:
            raise _bad(f"{feature['name']}.shape", "every input needs the same N")
        rows = shape[0]
    columns = [decoded[name][2] for name in names]
    return [list(row) for row in zip(*columns, strict=True)]


def requested_outputs(header: dict, available: list[str]) -> tuple[list[str], set[str]]:
    """(output names to return, names to return as binary) from the request's `outputs`."""
    default_binary = bool((header.get("parameters") or {}).get("binary_data_output", False))
    outputs = header.get("outputs")
    if outputs is None:
        return available, set(available) if default_binary else set()
    if not isinstance(outputs, list):
        raise _bad("outputs", "must be a list")
    names, binary = [], set()
    for index, spec in enumerate(outputs):
        name = spec.get("name") if isinstance(spec, dict) else None
        if name not in available:
            raise _bad(f"outputs[{index}].name", f"unknown output; expected one of {available}")
        names.append(name)
        params = spec.get("parameters") or {}
        if params.get("binary_data", default_binary):
            binary.add(name)
    return names, binary


def encode_response(body: dict, tensors: list[tuple[str, str, list[int], Any]], binary: set[str]):
    """(bytes, header length | None): JSON, or JSON header + binary tensors when asked."""
    outputs, blobs = [], []
    for name, datatype, shape, values in tensors:
        spec: dict[str, Any] = {"name": name, "datatype": datatype, "shape": shape}
        if name in binary:
            blob = binary_contents(datatype, values)
            spec["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            spec["data"] = values if datatype == "BYTES" else np.asarray(values).ravel().tolist()
        outputs.append(spec)
    header = orjson.dumps(body | {"outputs": outputs})
    if not blobs:
        return header, None
    return header + b"".join(blobs), len(header)


def output_names(predictor: Predictor) -> list[str]:
    return ["predict", "predict_proba"] if predictor.output.get("probabilities") else ["predict"]


def model_metadata(predictor: Predictor) -> dict:
    """V2 model metadata: the tensors this model takes and returns."""
    features = predictor.schema
    if all(f["type"] == "number" for f in features):
        inputs = [{"name": "input", "datatype": "FP64", "shape": [-1, len(features)]}]
    else:
        inputs = [
            {
                "name": f["name"],
                "datatype": "BYTES" if f["type"] == "category" else "FP64",
                "shape": [-1, 1],
            }
            for f in features
        ]
    label = "BYTES" if predictor.task == "classification" else "FP64"
    outputs = [{"name": "predict", "datatype": label, "shape": [-1]}]
    if predictor.output.get("probabilities"):
        classes = len(predictor.classes or [])
        outputs.append({"name": "predict_proba", "datatype": "FP64", "shape": [-1, classes]})
    return {
        "name": predictor.model_name,
        "versions": [predictor.version],
        "platform": "onnxruntime_onnx" if predictor.runtime == "onnx" else "sklearn",
        "inputs": inputs,
        "outputs": outputs,
    }


def output_tensors(predictor: Predictor, names: list[str], result, rows: int) -> list[tuple]:
    """(name, datatype, shape, values) per requested output, in the order asked."""
    tensors = []
    for output in names:
        if output == "predict":
            dtype = "BYTES" if predictor.task == "classification" else "FP64"
            tensors.append(("predict", dtype, [rows], result.predictions))
        else:
            width = len(predictor.classes or [])
            tensors.append(("predict_proba", "FP64", [rows, width], result.probabilities))
    return tensors
