"""The Open Inference Protocol (KServe v2 / Triton REST): parse infer requests, build answers.

No FastAPI here. Supports the JSON form and Triton's binary tensor extension
(`Inference-Header-Content-Length`: a JSON header, then raw tensors), which
`tritonclient` uses by default. Inputs, one per request:
- `images` (`UINT8`, `[n, size, size, 3]`): pixels at the model's input size;
- `image_bytes` (`BYTES`, `[n]`): encoded images, decoded by `imaging.load_image`
  like every other request (in JSON, each element is a base64 string).
Output `probabilities` (`FP32`, `[n, classes]`, label order). With the request
parameter `top_k`, also `top_labels` (`BYTES`, `[n, k]`) and `top_scores`
(`FP32`, `[n, k]`), best first. A version with an unknown scorer also answers
`unknown_score` (`FP32`, `[n]`, higher = less like the training photos) and
`unknown` (`BOOL`, `[n]`, above the calibrated threshold).
"""

from __future__ import annotations

import base64
import binascii
import math
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from modelstore.contract import BYTES_INPUT_NAME, INPUT_NAME, OUTPUT_NAME
from modelstore.unknown import UNKNOWN_FLAG_NAME, UNKNOWN_SCORE_NAME
from service.errors import BadRequest, Conflict, Unprocessable
from service.json_body import parse_json
from service.model_version import ModelVersion
from service.predictor import ImageInput
from service.unknown_outputs import flags

HEADER_LENGTH = "Inference-Header-Content-Length"
TOP_LABELS, TOP_SCORES = "top_labels", "top_scores"
UNKNOWN_OUTPUTS = (UNKNOWN_SCORE_NAME, UNKNOWN_FLAG_NAME)
OUTPUT_NAMES = (OUTPUT_NAME, TOP_LABELS, TOP_SCORES, *UNKNOWN_OUTPUTS)
_NUMPY = {"UINT8": np.uint8, "FP32": np.float32, "BOOL": np.bool_}
INT64_MAX = 2**63 - 1  # shapes are int64 in the protocol


@dataclass
class InferRequest:
    id: str | None
    images: np.ndarray | None = None  # UINT8 [n, s, s, 3]
    encoded: list[ImageInput] | None = None  # BYTES [n]
    top_k: int | None = None
    binary_default: bool = False  # `binary_data_output` request parameter
    outputs: dict[str, bool] = field(default_factory=dict)  # requested name -> binary


def _split_body(body: bytes, header_length: str | None) -> tuple[Any, bytes]:
    if header_length is None:
        return parse_json(body), b""
    if not (header_length.isascii() and header_length.isdigit()):
        raise BadRequest(f"{HEADER_LENGTH} must be a byte count, got {header_length!r}")
    size = int(header_length)
    if size > len(body):
        raise BadRequest(f"{HEADER_LENGTH} is {size} but the body has {len(body)} bytes")
    return parse_json(body[:size]), body[size:]


def _bytes_elements(raw: bytes, where: str) -> list[bytes]:
    """Triton's BYTES serialisation: each element is a uint32 LE length, then the bytes."""
    items, at = [], 0
    while at < len(raw):
        if at + 4 > len(raw):
            raise BadRequest(f"{where}: truncated BYTES element length")
        (size,) = struct.unpack_from("<I", raw, at)
        at += 4
        if at + size > len(raw):
            raise BadRequest(f"{where}: a BYTES element runs past the end of the data")
        items.append(raw[at : at + size])
        at += size
    return items


def _whole(value: Any) -> int | None:
    """`value` as an int if it is a whole number: JSON Schema counts 3.0 as the integer 3."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _shape(tensor: dict[str, Any], where: str) -> list[int]:
    """The tensor's dims: whole numbers from 0 to int64's largest, as the protocol says."""
    shape = tensor.get("shape")
    dims: list[int] = []
    for value in shape if isinstance(shape, list) else [None]:
        dim = _whole(value)
        if dim is None or not 0 <= dim <= INT64_MAX:
            raise BadRequest(f"{where}: 'shape' must be a list of non-negative integers")
        dims.append(dim)
    return dims


def parse_infer(body: bytes, header_length: str | None) -> InferRequest:
    """Validate an infer request; BadRequest (400) or Unprocessable (422) say what is wrong."""
    document, binary = _split_body(body, header_length)
    if not isinstance(document, dict):
        raise BadRequest('the body must be a JSON object like {"inputs": [...]}')
    inputs = document.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise BadRequest(
            f"'inputs' must hold exactly one tensor: {INPUT_NAME!r} (UINT8 [n, size, size, 3]) "
            f"or {BYTES_INPUT_NAME!r} (BYTES [n], encoded images)"
        )
    tensor = inputs[0]
    name, datatype = tensor.get("name"), tensor.get("datatype")
    where = f"input {name!r}"
    expected = {INPUT_NAME: "UINT8", BYTES_INPUT_NAME: "BYTES"}
    if not isinstance(name, str) or name not in expected:  # a JSON object is no dict key
        raise BadRequest(f"unknown input {name!r}; use {INPUT_NAME!r} or {BYTES_INPUT_NAME!r}")
    if datatype != expected[name]:
        raise BadRequest(f"{where} takes datatype {expected[name]}, got {datatype!r}")
    shape = _shape(tensor, where)
    params = tensor.get("parameters") or {}
    size = params.get("binary_data_size") if isinstance(params, dict) else None
    if size is not None:
        if not isinstance(size, int) or size < 0 or size > len(binary):
            raise BadRequest(f"{where}: binary_data_size {size!r} does not match the body")
        raw: bytes | None = binary[:size]
    else:
        raw = None
        if "data" not in tensor:
            raise BadRequest(f"{where} has neither 'data' nor binary data")
    request = _parse_parameters(document)
    count = math.prod(shape)  # exact: an absurd shape cannot overflow into a match
    if name == BYTES_INPUT_NAME:
        if len(shape) != 1:
            raise Unprocessable(f"{where} must have shape [n], got {shape}")
        items = _bytes_elements(raw, where) if raw is not None else _b64_list(tensor["data"], where)
        if len(items) != count:
            raise Unprocessable(f"{where} has {len(items)} elements for shape {shape}")
        request.encoded = [ImageInput(item, None) for item in items]
        return request
    if len(shape) != 4 or shape[3] != 3:
        raise Unprocessable(f"{where} must have shape [n, size, size, 3], got {shape}")
    if raw is not None:
        if len(raw) != count:
            raise Unprocessable(f"{where} has {len(raw)} bytes for shape {shape}")
        pixels = np.frombuffer(raw, np.uint8)
    else:
        pixels = _json_pixels(tensor["data"], count, where)
    request.images = pixels.reshape(shape)
    return request


def _b64_list(data: Any, where: str) -> list[bytes]:
    if not isinstance(data, list) or not all(isinstance(x, str) for x in data):
        raise BadRequest(f"{where}: JSON BYTES data must be a list of base64 strings")
    try:
        return [base64.b64decode(x, validate=True) for x in data]
    except (binascii.Error, ValueError) as exc:
        raise BadRequest(f"{where}: invalid base64 ({exc})") from exc


def _json_pixels(data: Any, count: int, where: str) -> np.ndarray:
    try:
        values = np.asarray(data).reshape(-1)
    except ValueError as exc:  # ragged nesting
        raise Unprocessable(f"{where}: the data has inconsistent nesting ({exc})") from exc
    if values.size != count:
        raise Unprocessable(f"{where} has {values.size} values for its shape ({count} expected)")
    if values.size and (
        not np.issubdtype(values.dtype, np.integer) or values.min() < 0 or values.max() > 255
    ):
        raise Unprocessable(f"{where}: UINT8 data must be integers from 0 to 255")
    return values.astype(np.uint8)


def _absent_as(value: Any, empty: Any) -> Any:
    """null reads as a missing key; every other value (false, 0, "") is checked as given."""
    return empty if value is None else value


def _boolean(value: Any, what: str) -> bool:
    """A JSON true/false; anything else ("yes", 1, {}) is refused, never guessed."""
    if not isinstance(value, bool):
        raise BadRequest(f"parameter {what} must be true or false, got {value!r}")
    return value


def _parse_parameters(document: dict[str, Any]) -> InferRequest:
    params = _absent_as(document.get("parameters"), {})
    if not isinstance(params, dict):
        raise BadRequest("'parameters' must be an object")
    if "id" in document and not isinstance(document["id"], str):
        raise BadRequest(f"'id' must be a string, got {document['id']!r}")
    request = InferRequest(id=document.get("id"))
    request.binary_default = _boolean(params.get("binary_data_output", False), "binary_data_output")
    if params.get("top_k") is not None:
        top_k = _whole(params["top_k"])
        if top_k is None or top_k < 1:
            raise BadRequest(f"parameter top_k must be a positive integer, got {params['top_k']!r}")
        request.top_k = top_k
    outputs = _absent_as(document.get("outputs"), [])
    if not isinstance(outputs, list):
        raise BadRequest('\'outputs\' must be a list like [{"name": "probabilities"}]')
    for output in outputs:
        name = output.get("name") if isinstance(output, dict) else None
        if name not in OUTPUT_NAMES:
            raise BadRequest(f"unknown output {name!r}; outputs: {', '.join(OUTPUT_NAMES)}")
        if name in (TOP_LABELS, TOP_SCORES) and request.top_k is None:
            raise BadRequest(f"output {name!r} needs the request parameter top_k")
        out_params = _absent_as(output.get("parameters"), {})
        if not isinstance(out_params, dict):
            raise BadRequest(f"the parameters of output {name!r} must be an object")
        request.outputs[name] = _boolean(
            out_params.get("binary_data", request.binary_default), f"binary_data of {name!r}"
        )
    return request


def _tensor(name: str, array: np.ndarray, datatype: str) -> dict[str, Any]:
    return {"name": name, "datatype": datatype, "shape": list(array.shape)}


def _serialise_bytes(items: list[bytes]) -> bytes:
    return b"".join(struct.pack("<I", len(item)) + item for item in items)


def infer_response(
    model: ModelVersion,
    request: InferRequest,
    probabilities: np.ndarray,
    unknown_scores: np.ndarray | None = None,
) -> tuple[bytes, dict[str, str]]:
    """The response body and headers (binary outputs use Triton's extension)."""
    arrays: dict[str, tuple[np.ndarray, str]] = {
        OUTPUT_NAME: (probabilities.astype(np.float32), "FP32")
    }
    flagged = flags(model.model, unknown_scores)
    if unknown_scores is not None and flagged is not None:
        arrays[UNKNOWN_SCORE_NAME] = (unknown_scores.astype(np.float32), "FP32")
        arrays[UNKNOWN_FLAG_NAME] = (flagged, "BOOL")
    if request.top_k is not None:
        order = np.argsort(-probabilities, axis=1, kind="stable")[:, : request.top_k]
        labels = np.asarray(model.labels, dtype=object)[order]
        arrays[TOP_LABELS] = (labels, "BYTES")
        arrays[TOP_SCORES] = (np.take_along_axis(probabilities, order, axis=1), "FP32")
    wanted = request.outputs or {name: request.binary_default for name in arrays}
    missing = [name for name in wanted if name not in arrays]
    if missing:  # a valid request this version cannot answer, like explain without its signature
        raise Conflict(
            f"{model.name} version {model.version} has no unknown scorer: it cannot answer "
            f"{', '.join(missing)}"
        )
    outputs, chunks = [], []
    for name, binary in wanted.items():
        array, datatype = arrays[name]
        entry = _tensor(name, array, datatype)
        if binary:
            if datatype == "BYTES":
                raw = _serialise_bytes([str(x).encode() for x in array.reshape(-1)])
            else:
                raw = np.ascontiguousarray(array, dtype=_NUMPY[datatype]).tobytes()
            entry["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            entry["data"] = array.reshape(-1).tolist()
        outputs.append(entry)
    document: dict[str, Any] = {
        "model_name": model.name,
        "model_version": str(model.version),
        "outputs": outputs,
    }
    if request.id is not None:
        document["id"] = request.id
    header = orjson.dumps(document)
    if not chunks:
        return header, {"Content-Type": "application/json"}
    return header + b"".join(chunks), {
        "Content-Type": "application/octet-stream",
        HEADER_LENGTH: str(len(header)),
    }


def model_metadata(model: ModelVersion, versions: list[int]) -> dict[str, Any]:
    size, classes = model.image_size, len(model.labels)
    return {
        "name": model.name,
        "versions": [str(v) for v in versions],
        "platform": "tensorflow_savedmodel",
        "inputs": [
            {"name": INPUT_NAME, "datatype": "UINT8", "shape": [-1, size, size, 3]},
            {"name": BYTES_INPUT_NAME, "datatype": "BYTES", "shape": [-1]},
        ],
        "outputs": [
            {"name": OUTPUT_NAME, "datatype": "FP32", "shape": [-1, classes]},
            {"name": TOP_LABELS, "datatype": "BYTES", "shape": [-1, -1]},
            {"name": TOP_SCORES, "datatype": "FP32", "shape": [-1, -1]},
            *(
                [
                    {"name": UNKNOWN_SCORE_NAME, "datatype": "FP32", "shape": [-1]},
                    {"name": UNKNOWN_FLAG_NAME, "datatype": "BOOL", "shape": [-1]},
                ]
                if model.model.beyond is not None
                else []
            ),
        ],
        "parameters": {
            "labels": model.labels,
            "device": model.device,
            "precision": model.precision,
        },
    }
