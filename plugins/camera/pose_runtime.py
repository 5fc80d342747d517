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
from google.protobuf.message import DecodeError

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
    # a file onnx cannot parse goes to onnxruntime as it is, which then says what is wrong, if anything
    try:
        int8 = quantized(model)
    except DecodeError as error:
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


def _graph(model: bytes):
    """The model's main graph, parsed by the onnx package (no check: onnxruntime judges the model)."""
    import onnx

    return onnx.load_from_string(model).graph


def graph_ops(model: bytes) -> frozenset[str]:
    """The operator types in the model's main graph."""
    return frozenset(node.op_type for node in _graph(model).node)


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
    import onnx

    parsed = onnx.load_from_string(model)
    graph = parsed.graph
    # a graph input may override an initializer of its name: leave those alone
    inputs = {value.name for value in graph.input}
    initializers = {t.name: t for t in graph.initializer if t.name not in inputs}
    users: dict[str, int] = {}
    copies = []
    for node in graph.node:
        for slot, name in enumerate(node.input):
            if name not in initializers:
                continue
            users[name] = users.get(name, 0) + 1
            if node.op_type == "DequantizeLinear" and slot in (0, 2) and users[name] > 1:
                copy = onnx.TensorProto()
                copy.CopyFrom(initializers[name])
                copy.name = node.input[slot] = f"{name}__kinefuse_dq{users[name]}"
                copies.append(copy)
    if not copies:
        return model
    graph.initializer.extend(copies)
    return parsed.SerializeToString()


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
        if s.dtype == "float32":
            tensor = (boxed.astype(np.float32) - np.array(s.mean, dtype=np.float32)) / np.array(
                s.std, dtype=np.float32
            )
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
