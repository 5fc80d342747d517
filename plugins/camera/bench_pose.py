"""Built-in bench ``kinefuse bench pose [--data DIR]``: the camera source's per-frame latency split into
decode, preprocess, inference and post-process, frames per second for 1 and 4 cameras on the CPU, and the
camera -> pose -> channel path's cost per frame over the bare onnxruntime call (goal: at most 2 ms).
Uses the shared Sports2D demo video and MoveNet (or DIR with a demo.mp4 and the models)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import cv2
import numpy as np

from kinefuse.bench import make_row
from kinefuse.bench.datasets.paths import shared_dir
from kinefuse.configschema import defaults
from kinefuse.interfaces import BenchSpec
from kinefuse_plugins.camera.pose_models import spec
from kinefuse_plugins.camera.pose_runtime import PoseModel

BARE_FRAMES = 120  # frames for timing the bare onnxruntime call
MODEL = "movenet_singlepose_lightning_int8"


class _Collector:
    """A SourceContext that only counts: the pipeline's channel put costs about this much."""

    def __init__(self):
        self.frames, self.source_id = 0, "bench"

    def add_device(self, device):
        pass

    def emit(self, batch):
        self.frames += 1

    def decode_error(self, message):
        raise RuntimeError(message)


def _files(options: dict) -> tuple[Path, Path]:
    root = Path(options["shared_dir"]) if options.get("shared_dir") else shared_dir()
    video = next(iter(sorted(root.rglob("demo.mp4"))), None)
    model = next(iter(sorted(root.rglob(spec(MODEL).file))), None)
    if video is None or model is None:
        raise ValueError(f"bench pose needs demo.mp4 and {spec(MODEL).file} under {root}")
    return video, model


def _frames(video: Path, count: int) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(video))
    frames = []
    while len(frames) < count:
        ok, image = capture.read()
        if not ok:
            break
        frames.append(image)
    return frames


def _stage_rows(video: Path, model_path: Path) -> list[dict]:
    model = PoseModel(spec(MODEL), model_path)
    capture = cv2.VideoCapture(str(video))
    decode, stages = [], {"preprocess": [], "inference": [], "postprocess": []}
    while True:  # the whole video, as the camera source below decodes it
        start = time.perf_counter()
        ok, image = capture.read()
        decode.append(time.perf_counter() - start)
        if not ok:
            break
        for stage, seconds in model(image).timings.items():
            stages[stage].append(seconds)
    # means, not medians: keyframes make decoding heavy-tailed, and the path cost below is a difference of means
    note = f"{video.name}, {MODEL}, CPU, 1 thread, mean of {len(decode)} frames"
    rows = [make_row("1 camera", "decode", "ms", float(np.mean(decode)) * 1e3, "lower", note=note)]
    return rows + [make_row("1 camera", stage, "ms", float(np.mean(v)) * 1e3, "lower", note=note)
                   for stage, v in stages.items()]  # fmt: skip


def _bare_inference_ms(model_path: Path, frames: list[np.ndarray]) -> float:
    model = PoseModel(spec(MODEL), model_path)
    tensors = [model.preprocess(frame)[0] for frame in frames]
    name = spec(MODEL).input
    start = time.perf_counter()
    for tensor in tensors:
        model.session.run(None, {name: tensor})
    return (time.perf_counter() - start) / len(tensors) * 1e3


async def _cameras(video: Path, model_path: Path, cameras: int) -> tuple[float, float]:
    """Frames per second and seconds per frame of the real camera source, ``cameras`` at once."""
    from kinefuse_plugins.camera.source import SCHEMA, CameraSource

    options = {**defaults(SCHEMA), "path": str(video), "model_path": str(model_path), "realtime": False}
    sources = [CameraSource(options, f"cam{i}") for i in range(cameras)]
    contexts = [_Collector() for _ in sources]
    start = time.perf_counter()
    await asyncio.gather(*(s.run(c) for s, c in zip(sources, contexts, strict=True)))
    elapsed = time.perf_counter() - start
    frames = sum(c.frames for c in contexts)
    return frames / elapsed, elapsed / contexts[0].frames


def run(options: dict) -> list[dict]:
    video, model_path = _files(options)
    rows = _stage_rows(video, model_path)
    frames = _frames(video, BARE_FRAMES)
    decode = next(row["value"] for row in rows if row["metric"] == "decode")
    bare = _bare_inference_ms(model_path, frames)
    one_fps, one_per_frame = asyncio.run(_cameras(video, model_path, 1))
    four_fps, _ = asyncio.run(_cameras(video, model_path, 4))
    path_overhead = one_per_frame * 1e3 - decode - bare
    note = f"{video.name} decoded and estimated as fast as possible through the camera source, CPU"
    cores = f"{note}; {os.cpu_count()} cores"
    return rows + [
        make_row("1 camera", "frames/s", "frames/s", one_fps, "higher", note=note),
        make_row("4 cameras", "frames/s (all cameras)", "frames/s", four_fps, "higher", note=cores),
        make_row("1 camera", "path cost over bare onnxruntime", "ms/frame", path_overhead, "lower",
                 note=f"source per frame {one_per_frame * 1e3:.2f} ms - decode {decode:.2f} - bare run {bare:.2f}; "
                      "goal <= 2 ms"),
    ]  # fmt: skip


SPEC = BenchSpec("pose", __doc__.strip(), run)
