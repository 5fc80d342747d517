"""Built-in bench ``kinefuse bench pose [--data DIR] [--duration S]``: the camera source with MoveNet on the
CPU, whole image and top-down (RTMDet-nano finding people, run only when tracking needs it): the per-frame
stages (decode, preprocess, inference, post-process), the bare onnxruntime calls, frames per second through
the real camera source flat out for 1 camera (the Sports2D demo) and 4 (the Pose2Sim cameras), the path's
cost per frame over the bare onnxruntime calls (goal: at most 2 ms) and where it goes, and the realistic
case: the 4 Pose2Sim cameras each delivering 30 frames/s for ``--duration`` seconds (default 10), with the
frames/s each camera kept, how late frames came out, the CPU it took and the detector's share."""

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

BARE_FRAMES = 120  # frames for timing the bare onnxruntime calls
MODEL, DETECTOR = "movenet_singlepose_lightning_int8", "rtmdet_nano_person"
CAMERA_FPS = 30.0  # the realistic case: each camera delivers this many frames per second
SUSTAINED = 0.99  # a camera keeps its rate when it delivers at least this fraction of it
PATHS = ("whole image", "top-down")


class _Collector:
    """A SourceContext that only counts and stamps: the pipeline's channel put costs about this much."""

    def __init__(self):
        self.frames, self.source_id, self.emitted_ns, self.device_us = 0, "bench", [], []

    def add_device(self, device):
        pass

    def emit(self, batch):
        self.frames += 1
        self.emitted_ns.append(time.monotonic_ns())
        self.device_us.append(int(batch.device_time[0]))

    async def wait_for_room(self):
        await asyncio.sleep(0)  # nothing downstream to wait for

    def decode_error(self, message):
        raise RuntimeError(message)


class _Taps:
    """Seconds spent decoding and in each model's stages, inside one camera source's run."""

    def __init__(self):
        self.decode_s, self.decoded = 0.0, 0
        self.stages: dict[str, dict[str, float]] = {}
        self.calls: dict[str, int] = {}

    def add(self, model: str, timings: dict[str, float]) -> None:
        stages = self.stages.setdefault(model, {})
        for stage, seconds in timings.items():
            stages[stage] = stages.get(stage, 0.0) + seconds
        self.calls[model] = self.calls.get(model, 0) + 1


class _TimedModel:
    """A PoseModel whose calls add their stage times to the taps; everything else is the model's."""

    def __init__(self, model, name: str, taps: _Taps):
        self._model, self._name, self._taps = model, name, taps

    def __getattr__(self, attribute):
        return getattr(self._model, attribute)

    def __call__(self, frame_bgr):
        inference = self._model(frame_bgr)
        self._taps.add(self._name, inference.timings)
        return inference


class _Capture:
    """An OpenCV capture whose reads are timed; with ``fps``, frame k is stamped k / fps seconds (a camera
    delivering ``fps`` frames per second) and the file is played ``loops`` times over; with ``limit``, it
    ends after that many frames."""

    def __init__(self, capture, path: str, taps: _Taps, fps: float | None, loops: int, limit: int | None,
                 params: list[int]):  # fmt: skip
        self._capture, self._path, self._taps, self._fps, self._loops = capture, path, taps, fps, loops
        self._index, self._loop, self._limit, self._params = 0, 0, limit, params

    def read(self):
        if self._limit is not None and self._index >= self._limit:
            return False, None
        start = time.perf_counter()
        ok, image = self._capture.read()
        if not ok and self._loop + 1 < self._loops:
            self._capture.release()
            self._capture = cv2.VideoCapture(self._path, cv2.CAP_FFMPEG, self._params)
            self._loop += 1
            ok, image = self._capture.read()
        self._taps.decode_s += time.perf_counter() - start
        self._taps.decoded += ok
        self._index += ok
        return ok, image

    def get(self, prop):
        if self._fps and prop == cv2.CAP_PROP_POS_MSEC:
            return (self._index - 1) * 1e3 / self._fps
        if self._fps and prop == cv2.CAP_PROP_FPS:
            return self._fps
        return self._capture.get(prop)

    def isOpened(self):  # noqa: N802 - OpenCV's name
        return self._capture.isOpened()

    def release(self):
        self._capture.release()


def _camera(path: Path, model: Path, detector: Path | None, fps: float | None = None, loops: int = 1,
            limit: int | None = None):  # fmt: skip
    """The real camera source on ``path`` (as fast as it decodes, or paced at ``fps``), with the taps."""
    from kinefuse_plugins.camera.source import SCHEMA, CameraSource, ffmpeg_params

    taps = _Taps()

    class BenchCamera(CameraSource):
        def _open(self):
            capture, file_fps, expected = super()._open()
            expected = min(expected * loops, limit or expected * loops)
            capture = _Capture(capture, str(path), taps, fps, loops, limit, ffmpeg_params(self.options))
            return capture, fps or file_fps, expected

    options = {**defaults(SCHEMA), "path": str(path), "model_path": str(model), "realtime": fps is not None}
    if detector is not None:
        options |= {"detector": DETECTOR, "detector_path": str(detector)}
    source = BenchCamera(options, path.stem)
    source.pose = _TimedModel(source.pose, MODEL, taps)
    if source.topdown is not None:
        source.topdown.keypoints = _TimedModel(source.topdown.keypoints, MODEL, taps)
        source.topdown.detector = _TimedModel(source.topdown.detector, DETECTOR, taps)
    return source, taps


async def _run_cameras(sources) -> tuple[list[_Collector], float, float]:
    """Run the sources together: their collectors, the wall seconds and the CPU seconds it took."""
    contexts = [_Collector() for _ in sources]
    cpu, start = time.process_time(), time.perf_counter()
    await asyncio.gather(*(s.run(c) for (s, _), c in zip(sources, contexts, strict=True)))
    return contexts, time.perf_counter() - start, time.process_time() - cpu


def _files(options: dict) -> dict:
    root = Path(options["shared_dir"]) if options.get("shared_dir") else shared_dir()
    found = {
        "demo": next(iter(sorted(root.rglob("demo.mp4"))), None),
        "model": next(iter(sorted(root.rglob(spec(MODEL).file))), None),
        "detector": next(iter(sorted(root.rglob(spec(DETECTOR).file))), None),
        "cameras": sorted(root.rglob("pose2sim_demo/videos/cam*.mp4"))[:4],
    }
    if None in found.values() or len(found["cameras"]) < 4:
        raise ValueError(f"bench pose needs demo.mp4, pose2sim_demo/videos/cam01..04.mp4, {spec(MODEL).file} "
                         f"and {spec(DETECTOR).file} under {root}")  # fmt: skip
    return found


def _frames(video: Path, count: int) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(video))
    frames = []
    while len(frames) < count:
        ok, image = capture.read()
        if not ok:
            break
        frames.append(image)
    return frames


def _decode_ms(video: Path, limit: int | None) -> tuple[float, float]:
    """Mean wall and CPU milliseconds per frame of decoding the whole video alone (OpenCV, FFmpeg's threads
    included in the CPU time)."""
    capture = cv2.VideoCapture(str(video), cv2.CAP_FFMPEG)
    frames, cpu, start = 0, time.process_time(), time.perf_counter()
    while (limit is None or frames < limit) and capture.read()[0]:
        frames += 1
    return (time.perf_counter() - start) / frames * 1e3, (time.process_time() - cpu) / frames * 1e3


def _stage_rows(video: Path, model_path: Path, limit: int | None) -> list[dict]:
    model = PoseModel(spec(MODEL), model_path)
    capture = cv2.VideoCapture(str(video))
    decode, stages = [], {"preprocess": [], "inference": [], "postprocess": []}
    while limit is None or len(decode) < limit:  # the whole video, as the camera source below decodes it
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


def _bare_ms(name: str, model_path: Path, frames: list[np.ndarray]) -> tuple[float, float]:
    """Wall and CPU ms of the bare ``session.run`` on the model's own input, preprocessed beforehand, one
    run after another."""
    model = PoseModel(spec(name), model_path)
    tensors = [model.preprocess(frame)[0] for frame in frames]
    model.session.run(None, {spec(name).input: tensors[0]})  # its first run allocates
    cpu, start = time.process_time(), time.perf_counter()
    for tensor in tensors:
        model.session.run(None, {spec(name).input: tensor})
    return (time.perf_counter() - start) / len(tensors) * 1e3, (time.process_time() - cpu) / len(
        tensors
    ) * 1e3


def _one_camera(video: Path, files: dict, path: str, bare: dict, decode: tuple[float, float],
                limit: int | None) -> list[dict]:  # fmt: skip
    """Flat out through the source on one video: frames/s and the path's cost over the bare calls, in wall
    time (the goal's terms) and in CPU time (which a busy machine disturbs less)."""
    source, taps = _camera(
        video, files["model"], files["detector"] if path == "top-down" else None, limit=limit
    )
    (context,), wall_s, cpu_s = asyncio.run(_run_cameras([(source, taps)]))
    frames = context.frames
    per_frame, cpu_per_frame = wall_s / frames * 1e3, cpu_s / frames * 1e3
    runs = {name: taps.calls.get(name, 0) / frames for name in (MODEL, DETECTOR)}
    bare_wall = sum(bare[name][0] * runs[name] for name in runs)
    bare_cpu = sum(bare[name][1] * runs[name] for name in runs)
    inside = {stage: sum(s.get(stage, 0.0) for s in taps.stages.values()) / frames * 1e3
              for stage in ("preprocess", "inference", "postprocess")}  # fmt: skip
    decode_inside = taps.decode_s / max(taps.decoded, 1) * 1e3
    glue = per_frame - decode_inside - sum(inside.values())
    case = f"1 camera, {path}"
    note = f"{video.name} decoded and estimated as fast as possible through the camera source, CPU, {frames} frames"
    if path == "top-down":
        note += (
            f"; detector runs per frame {runs[DETECTOR]:.3f}, keypoint model runs per frame {runs[MODEL]:.3f}"
        )
    per_run = " + ".join(f"{runs[n]:.2f} x {bare[n][0]:.2f}" for n in runs if runs[n])
    cost_note = (f"source per frame {per_frame:.2f} ms - its decode {decode_inside:.2f} (alone: {decode[0]:.2f}) - "
                 f"bare runs {bare_wall:.2f} (session.run alone, one after another; per frame {per_run}); where it "
                 f"goes, measured inside the same run: preprocess {inside['preprocess']:.2f}, inference "
                 f"{inside['inference']:.2f} (bare {bare_wall:.2f}), postprocess {inside['postprocess']:.2f}, the "
                 f"rest (worker-thread hops, event loop, crops, tracking, emit) {glue:.2f}; goal <= 2 ms")  # fmt: skip
    cpu_note = (f"CPU per frame through the source {cpu_per_frame:.2f} ms - decode alone {decode[1]:.2f} - bare "
                f"runs {bare_cpu:.2f} (process CPU time, all threads)")  # fmt: skip
    rows = [make_row(case, "frames/s", "frames/s", frames / wall_s, "higher", note=note),
            make_row(case, "path cost over bare onnxruntime", "ms/frame", per_frame - decode_inside - bare_wall,
                     "lower", note=cost_note),
            make_row(case, "path cost over bare onnxruntime, CPU time", "ms/frame",
                     cpu_per_frame - decode[1] - bare_cpu, "lower", note=cpu_note)]  # fmt: skip
    if path == "top-down":
        rows.append(make_row(case, "detections per frame", "1/frame", runs[DETECTOR], "lower", note=note))
    return rows


def _four_cameras(
    files: dict, path: str, fps: float | None, duration_s: float, limit: int | None
) -> list[dict]:
    """The 4 Pose2Sim cameras at once through the source: flat out, or each delivering ``fps`` frames/s."""
    detector = files["detector"] if path == "top-down" else None
    length = min(cv2.VideoCapture(str(v)).get(cv2.CAP_PROP_FRAME_COUNT) for v in files["cameras"]) or 1
    loops = max(1, round(duration_s * fps / length)) if fps else 1
    sources = [_camera(video, files["model"], detector, fps, loops, limit) for video in files["cameras"]]
    contexts, wall_s, cpu_s = asyncio.run(_run_cameras(sources))
    frames = sum(c.frames for c in contexts)
    detections = sum(taps.calls.get(DETECTOR, 0) for _, taps in sources)
    size = "x".join(str(int(cv2.VideoCapture(str(files["cameras"][0])).get(p))) for p in (3, 4))
    names = "-".join(v.stem for v in files["cameras"][:: len(files["cameras"]) - 1])
    decode = sum(t.decode_s for _, t in sources) / max(sum(t.decoded for _, t in sources), 1) * 1e3
    cores = f"{os.cpu_count()} cores, CPU used {cpu_s / wall_s:.2f} cores"
    if fps is None:
        case = f"4 cameras, {path}"
        note = (f"Pose2Sim {names} ({size}) decoded and estimated as fast as possible through 4 camera sources "
                f"at once, CPU; {cores}; decode {decode:.2f} ms/frame")  # fmt: skip
        rows = [make_row(case, "frames/s (all cameras)", "frames/s", frames / wall_s, "higher", note=note),
                make_row(case, "CPU per frame", "ms", cpu_s / frames * 1e3, "lower",
                         note=f"{note}; {CAMERA_FPS:g} frames/s from each of 4 cameras would take "
                              f"{cpu_s / frames * 4 * CAMERA_FPS:.2f} cores")]  # fmt: skip
    else:
        case = f"4 cameras at {fps:g} frames/s each, {path}"
        rates, late = [], []
        for c in contexts:
            emitted = (np.array(c.emitted_ns) - c.emitted_ns[0]) / 1e9
            due = (np.array(c.device_us) - c.device_us[0]) / 1e6
            rates.append((len(emitted) - 1) / emitted[-1] if emitted[-1] > 0 else 0.0)
            behind = emitted - due  # its due time counted from the first frame's, which came out late too
            late.append(behind - behind.min())  # so: behind as far as the most punctual frame was not
        lateness = np.concatenate(late) * 1e3
        kept = min(rates) >= SUSTAINED * fps
        note = (f"Pose2Sim {names} ({size}, recorded at 60 fps) each delivering {fps:g} frames/s through its camera "
                f"source (frame k due k/{fps:g} s; played {loops}x, {frames} frames in {wall_s:.1f} s); {cores}; "
                f"decode {decode:.2f} ms/frame; per camera frames/s {', '.join(f'{r:.2f}' for r in rates)}; "
                f"{fps:g} frames/s each sustained: {'yes' if kept else 'no'} (goal: on 2 cores, issue 13)")  # fmt: skip
        rows = [
            make_row(case, "frames/s, slowest camera", "frames/s", min(rates), "higher", note=note),
            make_row(case, "frame lateness p99 (behind its due time)", "ms",
                     float(np.percentile(lateness, 99)), "lower", note=note),
            make_row(case, "CPU used", "cores", cpu_s / wall_s, "lower", note=note),
        ]  # fmt: skip
    if path == "top-down":
        rows.append(
            make_row(case, "detections per frame", "1/frame", detections / frames, "lower", note=note)
        )
    return rows


def run(options: dict) -> list[dict]:
    """Options: ``shared_dir``, ``duration_s`` (the 30 frames/s cases, default 10) and ``frames`` (stop each
    video after that many frames: a short run for the tests)."""
    files = _files(options)
    duration_s, limit = options.get("duration_s") or 10.0, options.get("frames")
    rows = _stage_rows(files["demo"], files["model"], limit)
    decode = _decode_ms(files["demo"], limit)
    frames = _frames(files["demo"], BARE_FRAMES)
    bare = {
        MODEL: _bare_ms(MODEL, files["model"], frames),
        DETECTOR: _bare_ms(DETECTOR, files["detector"], frames),
    }
    note = (
        f"{files['demo'].name}, preprocessed beforehand, {len(frames)} runs one after another, CPU, 1 thread"
    )
    rows += [make_row("bare onnxruntime", f"{name} session.run", "ms", bare[name][0], "lower",
                      note=f"{note}; CPU time {bare[name][1]:.2f} ms") for name in (MODEL, DETECTOR)]  # fmt: skip
    del frames
    for path in PATHS:
        rows += _one_camera(files["demo"], files, path, bare, decode, limit)
    for path in PATHS:
        rows += _four_cameras(files, path, None, duration_s, limit)
    for path in PATHS:
        rows += _four_cameras(files, path, CAMERA_FPS, duration_s, limit)
    return rows


SPEC = BenchSpec("pose", __doc__.strip(), run)
