"""gRPC tensors -> the data plane: inputs raw or typed (CONTRACT section 8); outputs are encoded
by predictions.protocol.binary_contents, as V2 REST's binary outputs are.

Inputs decode to the same `{name: (datatype, shape, flat values)}` that the V2 REST decoder
(predictions.protocol) produces, so the same rules turn them into instances. Raw contents are
`raw_input_contents[i]` for `inputs[i]`: little-endian numbers, or BYTES elements each led by a
4-byte little-endian length. A request uses raw contents for all its inputs or for none.
Malformed tensors raise DRF `ValidationError` (400: INVALID_ARGUMENT).
"""

from __future__ import annotations

import math

import numpy as np
from rest_framework.exceptions import ValidationError

from predictions.protocol import KNOWN, NUMERIC, binary_values

TYPED_FIELD = {"FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents"}


def _bad(field: str, message: str) -> ValidationError:
    return ValidationError({field: [message]})


def _typed_values(tensor, datatype: str, count: int, field: str) -> list:
    values = list(getattr(tensor.contents, TYPED_FIELD[datatype]))
    if len(values) != count:
        raise _bad(f"{field}.contents", f"has {len(values)} elements; the shape needs {count}")
    if datatype == "BYTES":
        try:
            return [v.decode() for v in values]
        except UnicodeDecodeError:
            raise _bad(f"{field}.contents", "BYTES elements must be UTF-8 text") from None
    return values


def decode_inputs(request) -> dict[str, tuple[str, list[int], list]]:
    """{input name: (datatype, shape, flat values)} of a `ModelInferRequest`."""
    inputs, raw = request.inputs, request.raw_input_contents
    if not inputs:
        raise _bad("inputs", "must be a non-empty list of tensors")
    if raw and len(raw) != len(inputs):
        raise _bad(
            "raw_input_contents", f"has {len(raw)} entries for {len(inputs)} inputs; send one each"
        )
    decoded = {}
    for index, tensor in enumerate(inputs):
        field = f"inputs[{index}]"
        datatype = tensor.datatype
        if datatype not in KNOWN:
            raise _bad(f"{field}.datatype", f"unknown datatype {datatype[:20]!r}")
        if datatype not in TYPED_FIELD:
            raise _bad(f"{field}.datatype", "use FP32 or FP64 for numbers, BYTES for strings")
        shape = list(tensor.shape)
        if not shape or any(d < 0 for d in shape):
            raise _bad(f"{field}.shape", "must be a non-empty list of non-negative integers")
        count = math.prod(shape)
        if raw:
            if tensor.HasField("contents"):
                raise _bad(field, "send every input raw (raw_input_contents) or every one typed")
            values = binary_values(raw[index], datatype, count, field)
        elif tensor.HasField("contents"):
            values = _typed_values(tensor, datatype, count, field)
        else:
            raise _bad(f"{field}.contents", "is required (or raw_input_contents for every input)")
        if tensor.name in decoded:
            raise _bad(f"{field}.name", "appears twice")
        decoded[tensor.name] = (datatype, shape, values)
    return decoded


def numeric_matrix(request, width: int) -> np.ndarray | None:
    """The `[N, width]` float64 matrix of a single raw FP32/FP64 input, when it is one."""
    if len(request.inputs) != 1 or len(request.raw_input_contents) != 1:
        return None
    tensor, raw = request.inputs[0], request.raw_input_contents[0]
    dtype = NUMERIC.get(tensor.datatype)
    shape = list(tensor.shape)
    if (
        dtype is None
        or tensor.HasField("contents")
        or len(shape) != 2
        or shape[1] != width
        or len(raw) != shape[0] * width * dtype.itemsize
    ):
        return None
    return np.frombuffer(raw, dtype=dtype).reshape(shape[0], width).astype(np.float64)


def requested_outputs(request, available: list[str]) -> list[str]:
    """The output names to answer, in the order asked (all of them when none are asked)."""
    if not request.outputs:
        return available
    names = []
    for index, output in enumerate(request.outputs):
        if output.name not in available:
            raise _bad(f"outputs[{index}].name", f"unknown output; expected one of {available}")
        names.append(output.name)
    return names
