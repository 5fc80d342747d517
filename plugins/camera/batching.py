"""Batched inference across cameras: cameras that use the same model file share one onnxruntime session,
and requests that arrive within ``window_s`` of each other run as one batch when the model takes more
than one image at a time.

Whether it does is measured, not assumed from the input's shape: a free batch dimension is only a
promise, and RTMDet-nano's export breaks it (its box decoding broadcasts against a fixed batch of 1), so
the first request is run once more as a batch of two copies. MoveNet's batch is fixed at 1. Models
that fail the probe still share the session, their requests running one by one without waiting.

Callers are the cameras' worker threads. The first request of a round leads: it waits ``window_s`` for
others, runs them, stacked by input shape, and hands each its own slice of the outputs (or the error,
which the callers in that stack re-raise); requests arriving meanwhile wait for the next round.
``runs`` and ``requests`` count what happened.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from kinefuse_plugins.camera import cpu_features
from kinefuse_plugins.camera.pose_runtime import open_session

_SHARED: dict[tuple, SharedModel] = {}
_SHARED_LOCK = threading.Lock()


class _Request:
    def __init__(self, tensor: np.ndarray):
        self.tensor, self.outputs, self.error = tensor, None, None
        self.done = threading.Event()


class SharedModel:
    def __init__(
        self, path: Path, providers=("CPUExecutionProvider",), threads: int = 1, window_s: float = 0.002
    ):
        self.session, self.runtime = open_session(path, tuple(providers), threads)
        self.input = self.session.get_inputs()[0].name
        batch = self.session.get_inputs()[0].shape[0]
        self.batchable: bool | None = False if isinstance(batch, int) else None  # None: probe on first use
        self.why_not_batched = (
            f"input batch is fixed at {batch}" if isinstance(batch, int) else "not probed yet"
        )
        self.window_s = window_s
        self.runs = self.requests = 0
        self._lock = threading.Lock()
        self._waiting: list[_Request] = []
        self._leader_busy = False

    def _probe_batch(self, tensor: np.ndarray) -> tuple[bool, str]:
        """Whether two copies of a real request (a free batch dimension) run as one batch with one output row
        per image."""
        import onnxruntime

        quiet = onnxruntime.RunOptions()
        quiet.log_severity_level = 4  # the failure is expected for some exports and reported below
        try:
            outputs = self.session.run(None, {self.input: np.concatenate([tensor, tensor])}, quiet)
        except Exception as error:  # onnxruntime raises its own Fail/InvalidArgument types
            return False, f"a batch of 2 fails: {str(error).splitlines()[0][:160]}"
        if any(np.ndim(out) == 0 or np.shape(out)[0] != 2 for out in outputs):
            return False, "its outputs are not one row per image"
        return True, ""

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        """Outputs for one input tensor (batch 1), possibly computed in a batch with other cameras'."""
        if self.batchable is False:
            with self._lock:
                self.requests += 1
                self.runs += 1
            return self.session.run(None, {self.input: tensor})
        request = _Request(tensor)
        with self._lock:
            self.requests += 1
            self._waiting.append(request)
            lead = not self._leader_busy
            self._leader_busy = True
        if lead:
            self._lead()
        request.done.wait()
        if request.error is not None:
            raise request.error
        return request.outputs

    def _lead(self) -> None:
        threading.Event().wait(self.window_s)  # let the other cameras' requests arrive
        with self._lock:
            batch, self._waiting = self._waiting, []
            self._leader_busy = False
        if self.batchable is None:
            self.batchable, self.why_not_batched = self._probe_batch(batch[0].tensor)
        groups: dict[tuple, list[_Request]] = {}
        for i, request in enumerate(batch):  # only same-shaped inputs stack
            key = (request.tensor.shape, request.tensor.dtype.str) if self.batchable else i
            groups.setdefault(key, []).append(request)
        for group in groups.values():
            self._run_group(group)

    def _run_group(self, group: list[_Request]) -> None:
        try:
            stacked = np.concatenate([r.tensor for r in group], axis=0)
            outputs = self.session.run(None, {self.input: stacked})
        except Exception as error:  # every waiter gets it; none is left blocked
            for request in group:
                request.error = error
                request.done.set()
            return
        with self._lock:
            self.runs += 1
        for i, request in enumerate(group):
            request.outputs = [out[i : i + 1] for out in outputs]
            request.done.set()


def shared_model(path: Path, providers=("CPUExecutionProvider",), threads: int = 1) -> SharedModel:
    """The process's SharedModel for this file and settings (created on first use); the int8 path asked for
    (``$KINEFUSE_INT8_PATH``) is one of the settings."""
    key = (str(Path(path).resolve()), tuple(providers), threads, cpu_features.requested())
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = SharedModel(Path(path), providers, threads)
        return _SHARED[key]
