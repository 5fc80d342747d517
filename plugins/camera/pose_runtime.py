"""Running a registered model with onnxruntime: preprocessing as its spec says, inference, decoding, and
the way back to image pixels, each stage timed.

An int8 (quantized) model runs the way ``cpu_features.choose`` picks for this CPU (``fused``, ``precise`` or
``float``, docs/pose.md); ``open_session`` returns the session with that choice (``RuntimeChoice``), which
``kinefuse models check`` prints and the camera source stores in its device's meta."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import cv2
import numpy as np

from kinefuse.interfaces import Inference
from kinefuse_plugins.camera import cpu_features
from kinefuse_plugins.camera.decoders import DECODERS
from kinefuse_plugins.camera.image_geometry import Transform, letterbox
from kinefuse_plugins.camera.pose_models import ModelSpec

PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "OpenVINOExecutionProvider",
             "CoreMLExecutionProvider", "CPUExecutionProvider")  # fmt: skip
# Operators that make a graph quantized (ONNX's and onnxruntime's contrib ones; any QLinear* too).
QUANTIZED_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "MatMulInteger",
                           "ConvInteger", "QGemm", "QAttention", "DynamicQuantizeMatMul",
                           "MatMulIntegerToFloat"})  # fmt: skip
# The session config entries of each int8 path
# (include/onnxruntime/core/session/onnxruntime_session_options_config_keys.h).
INT8_SETTINGS = {
    "fused": {},
    "precise": {"session.x64quantprecision": "1"},  # kOrtSessionOptionsAvx2PrecisionMode
    "float": {"session.disable_quant_qdq": "1"},  # kOrtSessionOptionsDisableQuantQDQ
}


@dataclasses.dataclass(frozen=True)
class RuntimeChoice:
    """How a model's session computes: its int8 path (None for a float model), why, on which CPU."""

    int8_path: str | None
    reason: str
    cpu: str
    provider: str

    def meta(self) -> dict:
        """For the device's meta in storage (each keypoint frame's provenance)."""
        import onnxruntime

        settings = INT8_SETTINGS.get(self.int8_path or "", {})
        return {"int8_path": self.int8_path or "none (float model)", "reason": self.reason, "cpu": self.cpu,
                "provider": self.provider, "onnxruntime": onnxruntime.__version__,
                "session_config": dict(settings)}  # fmt: skip

    def describe(self) -> str:
        settings = ", ".join(f"{k}={v}" for k, v in INT8_SETTINGS.get(self.int8_path or "", {}).items())
        path = self.int8_path or "none (float model)"
        return f"int8 path: {path}{f' ({settings})' if settings else ''}: {self.reason}"


def session(path: Path, providers: tuple[str, ...] = ("CPUExecutionProvider",), threads: int = 1):
    """An onnxruntime session on the first of ``providers`` this onnxruntime has (CPU as the last resort),
    an int8 model on this CPU's int8 path (``open_session``)."""
    return open_session(path, providers, threads)[0]


def open_session(path: Path, providers: tuple[str, ...] = ("CPUExecutionProvider",), threads: int = 1,
                 int8_path: str | None = None):  # fmt: skip
    """``(session, RuntimeChoice)``. ``int8_path``: auto, fused, precise or float (default:
    ``$KINEFUSE_INT8_PATH``, else auto: ``cpu_features.choose`` for this CPU)."""
    import onnxruntime

    available = set(onnxruntime.get_available_providers())
    unknown = [p for p in providers if p not in PROVIDERS]
    if unknown:
        raise ValueError(f"unknown execution providers {unknown}; known: {', '.join(PROVIDERS)}")
    chosen = [p for p in providers if p in available] or ["CPUExecutionProvider"]
    features = cpu_features.detect()
    model = Path(path).read_bytes()
    why = "no quantized operators in the graph"
    # a file this reader cannot parse goes to onnxruntime as it is, which then says what is wrong, if anything
    unreadable = (ValueError, IndexError, UnicodeDecodeError)
    try:
        int8 = quantized(model)
    except unreadable as error:
        int8, why = False, f"graph not readable here ({error}): onnxruntime's defaults"
    cpu = features.describe()
    if not int8:
        return _session(str(path), chosen, threads, "fused"), RuntimeChoice(None, why, cpu, chosen[0])
    name, why = cpu_features.choose(features, int8_path)
    if name == "precise":
        try:
            built = _session(private_dq_initializers(model), chosen, threads, "precise")
            return built, RuntimeChoice(name, why, cpu, chosen[0])
        except Exception as error:  # onnxruntime's own Fail type; the float path needs no int8 kernel
            message = str(error).strip().splitlines()[-1][:200]
            name, why = "float", f"{why}; but x64quantprecision failed here ({message}): Q/DQ run in float"
    return _session(str(path), chosen, threads, name), RuntimeChoice(name, why, cpu, chosen[0])


def _session(model: str | bytes, providers: list[str], threads: int, int8_path: str):
    """A session on ``model`` (a path, or the model's bytes) with the settings of ``int8_path``."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    for key, value in INT8_SETTINGS[int8_path].items():
        options.add_session_config_entry(key, value)
    return onnxruntime.InferenceSession(model, sess_options=options, providers=providers)


# -- Reading and editing the ONNX graph without the onnx package (a dev dependency only): protobuf's wire
# format (https://protobuf.dev/programming-guides/encoding/) and onnx.proto's field numbers (ModelProto.graph
# 7; GraphProto.node 1, initializer 5, input 11; NodeProto.input 1, op_type 4; TensorProto.name 8;
# ValueInfoProto.name 1).


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[i]
        i += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, i
        shift += 7


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        out.append(value & 0x7F | (0x80 if value > 0x7F else 0))
        value >>= 7
        if not value:
            return bytes(out)


def _fields(buf: bytes, start: int = 0, end: int | None = None):
    """(number, wire type, value, field start, field end) for each field of the message in buf[start:end];
    a length-delimited field's value is the (start, end) of its payload."""
    i, end = start, len(buf) if end is None else end
    while i < end:
        begin = i
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 2:
            size, i = _varint(buf, i)
            value, i = (i, i + size), i + size
        elif wire in (1, 5):
            value, i = None, i + (8 if wire == 1 else 4)
        else:
            raise ValueError(f"not an ONNX model (protobuf wire type {wire} at byte {begin})")
        yield number, wire, value, begin, i


def _field(number: int, payload: bytes) -> bytes:
    return _encode_varint(number << 3 | 2) + _encode_varint(len(payload)) + payload


def _strings(buf: bytes, span: tuple[int, int], number: int) -> list[str]:
    return [buf[a:b].decode() for n, w, (a, b), _, _ in _spans(buf, span) if n == number]


def _spans(buf: bytes, span: tuple[int, int]):
    return ((n, w, v, s, e) for n, w, v, s, e in _fields(buf, *span) if w == 2)


def _graph(model: bytes) -> tuple[int, int, tuple[int, int]]:
    for number, wire, value, begin, end in _fields(model):
        if number == 7 and wire == 2:
            return begin, end, value
    raise ValueError("not an ONNX model (no graph)")


def graph_ops(model: bytes) -> frozenset[str]:
    """The operator types in the model's main graph."""
    _, _, graph = _graph(model)
    return frozenset(
        op for n, _, node, _, _ in _spans(model, graph) if n == 1 for op in _strings(model, node, 4)
    )


def quantized(model: bytes) -> bool:
    """Whether the model computes in int8 anywhere: Q/DQ nodes (QDQ format) or quantized operators (QOperator
    format) in its graph. Read from the file, not declared in models.toml: the file that runs decides (a
    ``model_path`` or an added file), and a model's input dtype says nothing of its arithmetic."""
    ops = graph_ops(model)
    return bool(ops & QUANTIZED_OPS) or any(op.startswith("QLinear") for op in ops)


def private_dq_initializers(model: bytes) -> bytes:
    """The model with every DequantizeLinear owning the initializers of its input and zero point.

    With ``session.x64quantprecision``, onnxruntime converts each int8 weight and its zero point to uint8
    under a name made from the old one (``QDQ::ConvertS8WeightToU8``,
    ``onnxruntime/core/optimizer/qdq_transformer/s8_to_u8.cc``), so an initializer two DequantizeLinear
    nodes share is converted twice and onnxruntime 1.32 refuses the second ("Attempt to replace the existing
    tensor"). MoveNet's export shares zero points across many of them. A copy per later user keeps the
    values, and so the model's output, unchanged."""
    graph_begin, graph_end, graph = _graph(model)
    initializers = {}
    for number, _, value, begin, end in _spans(model, graph):
        if number == 5:
            names = _strings(model, value, 8)
            if names:
                initializers[names[0]] = (begin, end, value)
    for number, _, value, _, _ in _spans(model, graph):
        if number == 11:  # a graph input may override an initializer of its name: leave those alone
            for name in _strings(model, value, 1)[:1]:
                initializers.pop(name, None)
    users: dict[str, int] = {}
    pieces, copies = [], []
    for number, wire, value, begin, end in _fields(model, *graph):
        if number != 1 or wire != 2:
            pieces.append(model[begin:end])
            continue
        inputs = _strings(model, value, 1)
        op = _strings(model, value, 4)
        renamed = list(inputs)
        for slot, name in enumerate(inputs):
            if name not in initializers:
                continue
            users[name] = users.get(name, 0) + 1
            if op == ["DequantizeLinear"] and slot in (0, 2) and users[name] > 1:
                renamed[slot] = f"{name}__kinefuse_dq{users[name]}"
                copies.append(_renamed_tensor(model, initializers[name][2], renamed[slot]))
        if renamed == inputs:
            pieces.append(model[begin:end])
            continue
        node, next_input = bytearray(), iter(renamed)
        for n, w, _, a, b in _fields(model, *value):
            node += _field(1, next(next_input).encode()) if n == 1 and w == 2 else model[a:b]
        pieces.append(_field(1, bytes(node)))
    if not copies:
        return model
    new_graph = b"".join(pieces) + b"".join(_field(5, tensor) for tensor in copies)
    return model[:graph_begin] + _field(7, new_graph) + model[graph_end:]


def _renamed_tensor(model: bytes, tensor: tuple[int, int], name: str) -> bytes:
    out = bytearray()
    for number, wire, _, begin, end in _fields(model, *tensor):
        out += _field(8, name.encode()) if number == 8 and wire == 2 else model[begin:end]
    return bytes(out)


class PoseModel:
    """One model ready to run on BGR frames (OpenCV's order)."""

    def __init__(self, model: ModelSpec, path: Path, providers=("CPUExecutionProvider",), threads: int = 1,
                 shared: bool = False):  # fmt: skip
        """``shared``: use the process's one session for this file, batching requests across cameras
        (kinefuse_plugins.camera.batching) where the model takes any batch size."""
        if model.decoder not in DECODERS:
            raise ValueError(f"model {model.name}: unknown decoder {model.decoder!r}")
        self.spec = model
        self.decode = DECODERS[model.decoder]
        if shared:
            from kinefuse_plugins.camera.batching import (
                shared_model,  # batching builds on this module's sessions
            )

            self._shared = shared_model(path, tuple(providers), threads)
            self.session, self.runtime = self._shared.session, self._shared.runtime
        else:
            self._shared = None
            self.session, self.runtime = open_session(path, tuple(providers), threads)

    def preprocess(self, frame_bgr: np.ndarray) -> tuple[np.ndarray, Transform]:
        s = self.spec
        boxed, transform = letterbox(frame_bgr, s.size, s.pad_value, s.align)
        if s.colour == "RGB":  # after the resize: a few thousand pixels instead of a whole frame
            boxed = cv2.cvtColor(boxed, cv2.COLOR_BGR2RGB)
        tensor = boxed.astype(np.float32)
        if s.dtype == "float32":
            tensor = (tensor - np.array(s.mean, dtype=np.float32)) / np.array(s.std, dtype=np.float32)
        else:
            tensor = boxed  # uint8 models take raw pixels
        if s.layout == "NCHW":
            tensor = np.transpose(tensor, (2, 0, 1))
        return np.ascontiguousarray(tensor[None], dtype=np.dtype(s.dtype)), transform

    def __call__(self, frame_bgr: np.ndarray) -> Inference:
        start = time.perf_counter()
        tensor, transform = self.preprocess(frame_bgr)
        prepared = time.perf_counter()
        if self._shared is not None:
            outputs = self._shared.run(tensor)
        else:
            outputs = self.session.run(None, {self.spec.input: tensor})
        inferred = time.perf_counter()
        decoded = self.decode(outputs, self.spec.size)
        result = self._to_image(decoded, transform)
        return Inference.timed(result, start, prepared, inferred)

    def _to_image(self, decoded: np.ndarray, transform: Transform) -> np.ndarray:
        out = np.array(decoded, dtype=np.float64, copy=True)
        if self.spec.kind == "detector":  # boxes: both corners
            out[:, 0:2] = transform.to_image(out[:, 0:2])
            out[:, 2:4] = transform.to_image(out[:, 2:4])
        else:
            out[..., :2] = transform.to_image(out[..., :2])
        return out
