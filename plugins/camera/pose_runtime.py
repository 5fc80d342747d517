"""Running a registered model with onnxruntime: preprocessing as its spec says, inference, decoding, and
the way back to image pixels, each stage timed."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np

from kinefuse.interfaces import Inference
from kinefuse_plugins.camera.decoders import DECODERS
from kinefuse_plugins.camera.image_geometry import Transform, letterbox
from kinefuse_plugins.camera.pose_models import ModelSpec

PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "OpenVINOExecutionProvider",
             "CoreMLExecutionProvider", "CPUExecutionProvider")  # fmt: skip


def session(path: Path, providers: tuple[str, ...] = ("CPUExecutionProvider",), threads: int = 1):
    """An onnxruntime session on the first of ``providers`` this onnxruntime has (CPU as the last resort)."""
    import onnxruntime

    available = set(onnxruntime.get_available_providers())
    unknown = [p for p in providers if p not in PROVIDERS]
    if unknown:
        raise ValueError(f"unknown execution providers {unknown}; known: {', '.join(PROVIDERS)}")
    chosen = [p for p in providers if p in available] or ["CPUExecutionProvider"]
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(str(path), sess_options=options, providers=chosen)


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
            self.session = self._shared.session
        else:
            self._shared = None
            self.session = session(path, tuple(providers), threads)

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
