"""Built-in source ``camera``: video files (and V4L2 devices or RTSP URLs that OpenCV opens) through a pose
model, emitting keypoint frames.

Frames are read in a worker thread (``cv2.VideoCapture``), so capture never blocks the event loop, and
each goes through the pose model (pose_runtime): on the whole image, or, with a ``detector``, top-down on
a crop around each person found, the people tracked across frames and the athlete's keypoints emitted
(left/right swaps undone). The frame's timestamp is the container's or device's
presentation time (``CAP_PROP_POS_MSEC``), in microsecond ticks; its sequence number is that time times
the nominal frame rate, so a dropped frame shows as a jump the ``sequence_gaps`` processor counts. The
host stamp is ``time.monotonic_ns()`` when the frame was read. A camera that gives no frame for
``watchdog_s``, or a live stream that ends, fails with that reason, and its supervisor restarts it
(reconnects) with backoff. A file
is replayed at its own rate (``realtime = true``) or as fast as it decodes. Bad input fails with what
and where: a missing or unreadable file, a file that is no video, a stream that ends early (truncated).

With ``calibration`` (a Pose2Sim calibration file) the camera declares its calibration in its device meta
(``calibration``, kinefuse.camera_calibration.calibration_meta), which the motion processor triangulates;
a missing file, a camera not in it, or frames of another size than the calibrated one fail the source.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from pathlib import Path

import numpy as np

from kinefuse.camera_calibration import CameraCalibration, calibration_meta, read_calibration
from kinefuse.configschema import Field
from kinefuse.interfaces import SourceContext, SourceSpec
from kinefuse.types import DeviceInfo, DeviceKind, keypoint_batch
from kinefuse_plugins.camera.pose_models import KEYPOINT_COUNTS
from kinefuse_plugins.camera.tracking import Tracker, valid_region

CLOCK_HZ = 1_000_000.0  # frame times in microseconds
_FIRST_CONNECTION: dict[
    str, int
] = {}  # source id -> monotonic ns of its first connection (survives restarts)
SCHEMA = {
    "path": Field(str, "", "video file, V4L2 device (/dev/video0, /dev/v4l/by-id/...) or rtsp:// URL"),
    "device_id": Field(str, "", "device id in storage (default: the source id)"),
    "model": Field(
        str,
        "movenet_singlepose_lightning_int8",
        "pose model: an ONNX model or a plugin's (kinefuse models list)",
    ),
    "model_path": Field(
        str, "", "model file (default: the installed one, kinefuse models add)", is_path=True
    ),
    "providers": Field(
        list, ["CPUExecutionProvider"], "onnxruntime execution providers, best first", item_type=str
    ),
    "threads": Field(int, 1, "onnxruntime threads", min=1, max=64),
    "decode_threads": Field(
        int, 1, "FFmpeg decoder threads, file or stream (0: FFmpeg's choice)", min=0, max=64
    ),
    "realtime": Field(bool, True, "replay a file at its own frame rate; false: as fast as it decodes"),
    "detector": Field(
        str, "", "person detector for the top-down path (e.g. rtmdet_nano_person); empty: whole image"
    ),
    "detector_path": Field(str, "", "detector file (default: the installed one)", is_path=True),
    "athlete": Field(
        str, "largest", "which tracked person is the athlete", choices=("largest", "central", "region")
    ),
    "athlete_region": Field(
        list, [], "athlete = region: x1, y1, x2, y2 as fractions of the image", item_type=float
    ),
    "max_people": Field(int, 4, "people tracked at most (top-down path)", min=1, max=32),
    "batch_across_cameras": Field(
        bool, True, "share one session per model file with the other cameras, batching where the model allows"
    ),
    "watchdog_s": Field(
        float, 5.0, "no frame for this long: restart the camera (reconnect)", min=0.001, max=600.0
    ),
    "calibration": Field(
        str, "", "Pose2Sim calibration file (TOML) with this camera; empty: uncalibrated", is_path=True
    ),
    "calibration_camera": Field(
        str, "", "the camera's name in the calibration file (default: the source id)"
    ),
}


def problems(options: dict) -> list[tuple[str, str]]:
    """Options that pass their schema but can never run together, as (key, message): ``check-config`` and
    ``run`` refuse them before start instead of the camera failing at every restart."""
    found = [] if options["path"] else [("path", "no path: a video file, V4L2 device or rtsp:// URL")]
    found += _model_problems(options["model"], options["detector"])
    if options["athlete"] == "region" and not valid_region(options["athlete_region"]):
        region = options["athlete_region"]
        found.append(("athlete_region", "athlete = 'region' needs athlete_region = [x1, y1, x2, y2], "
                                        f"fractions of the image, x1 < x2, y1 < y2; got {region}"))  # fmt: skip
    if options["calibration_camera"] and not options["calibration"]:
        found.append(("calibration_camera", "names a camera in a calibration file, but calibration (the "
                                            "file) is not set"))  # fmt: skip
    return found


def _model_problems(model: str, detector: str) -> list[tuple[str, str]]:
    from kinefuse_plugins.camera import estimators, pose_models

    models, plugin_estimator = pose_models.known_models(), estimators.lookup(model)
    found = []
    if plugin_estimator is None and model not in models:
        known = ", ".join(sorted([*models, *estimators.registered()]))
        found.append(("model", f"unknown model {model!r}; known: {known}"))
    if detector and plugin_estimator is not None:
        found.append(("detector", f"model {model} runs on the whole image; the top-down path (detector) "
                                  "needs an ONNX keypoint model"))  # fmt: skip
    if detector and (detector not in models or models[detector].kind != "detector"):
        detectors = ", ".join(sorted(name for name, m in models.items() if m.kind == "detector"))
        found.append(("detector", f"{detector!r} is no person detector; known: {detectors}"))
    return found


def ffmpeg_params(options: dict) -> list[int]:
    """OpenCV's open parameters for a file or stream: timeouts, and the decoder's threads. One thread is the
    default because it costs the least CPU per frame (FFmpeg's frame threads add ~1 ms a 1080p frame here,
    docs/pose.md) and several cameras already keep the cores busy; 0 leaves FFmpeg its own choice."""
    import cv2

    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 5000, cv2.CAP_PROP_READ_TIMEOUT_MSEC, 5000]
    return params + ([cv2.CAP_PROP_N_THREADS, options["decode_threads"]] if options["decode_threads"] else [])


def load_calibration(options: dict, source_id: str) -> CameraCalibration | None:
    """The camera's calibration from ``options["calibration"]`` (None when unset); a ValueError naming the file
    and the camera when the file is missing or malformed or has no such camera."""
    path = options["calibration"]
    if not path:
        return None
    name = options["calibration_camera"] or source_id
    where = f"camera {source_id!r}: calibration {path}"
    if not Path(path).is_file():
        raise ValueError(f"{where}: the file does not exist (looking for camera {name!r})")
    try:
        cameras = read_calibration(path)
    except (OSError, ValueError) as e:  # read_calibration's messages name the file and table already
        raise ValueError(f"camera {source_id!r}: calibration of camera {name!r}: {e}") from None
    found = [cam for cam in cameras if cam.name == name]
    if not found:
        known = ", ".join(cam.name for cam in cameras)
        hint = "" if options["calibration_camera"] else " (set calibration_camera to its name there)"
        raise ValueError(f"{where}: no camera {name!r} in it; it has {known}{hint}")
    return found[0]


def size_problem(cam: CameraCalibration, size: tuple[float, float], options: dict, source_id: str) -> str:
    """Why ``cam`` cannot describe frames of ``size`` (width, height px), or "": a calibration is only valid
    at the image size it was computed for (its principal point and focal length are in those pixels)."""
    if tuple(float(v) for v in cam.size) == tuple(float(v) for v in size):
        return ""
    (cw, ch), (w, h) = cam.size, size
    return (f"camera {source_id!r}: calibration {options['calibration']} camera {cam.name!r} is for "
            f"{cw:g} x {ch:g} px images but {options['path']} gives {w:g} x {h:g} px frames")  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Seen:
    """One frame's people: the athlete's keypoints (K, 3) or None, whether the tracker undid a left/right
    swap in them, the athlete's track id (-1: none), and everyone else seen, (track id, keypoints)."""

    athlete: np.ndarray | None
    swapped: bool = False
    track_id: int = -1
    others: list[tuple[int, np.ndarray]] = dataclasses.field(default_factory=list)

    def fields(self, count: int) -> dict:
        """keypoint_batch's people fields for this one frame (``count`` keypoints a person)."""
        athlete = self.athlete if self.athlete is not None else np.full((count, 3), np.nan)
        fields = {"keypoints": athlete[None], "swap_corrected": [self.swapped], "track_id": [self.track_id]}
        if self.others:
            fields["others"] = np.stack([k for _, k in self.others])[None]
            fields["other_ids"] = [[i for i, _ in self.others]]
        return fields


class CameraSource:
    def __init__(self, options: dict, source_id: str):
        from kinefuse_plugins.camera import estimators
        from kinefuse_plugins.camera.pose_runtime import PoseModel
        from kinefuse_plugins.camera.topdown import TopDown

        self.options, self.source_id = options, source_id
        self.device_id = options["device_id"] or source_id
        for key, message in problems(options):
            raise ValueError(f"camera {source_id!r}: {key}: {message}")
        self.calibration = load_calibration(options, source_id)  # before the models: fails fast
        runtime = (tuple(options["providers"]), options["threads"], options["batch_across_cameras"])
        plugin_estimator = estimators.lookup(options["model"])
        if plugin_estimator is not None:  # a plugin's estimator (e.g. mediapipe_pose_full), whole image
            self.pose = plugin_estimator.factory(options)
            self.keypoint_set = plugin_estimator.keypoint_set
        else:
            self.pose = PoseModel(*self._model(options["model"], options["model_path"]), *runtime)
            self.keypoint_set = self.pose.spec.keypoint_set
        self.topdown = None
        if options["detector"]:
            detector = PoseModel(*self._model(options["detector"], options["detector_path"]), *runtime)
            self.topdown = TopDown(detector, self.pose, options["max_people"])
        self.tracker: Tracker | None = None

    def _model(self, name: str, file: str):
        from kinefuse_plugins.camera import pose_models

        model = pose_models.spec(name)
        path = Path(file) if file else pose_models.installed_path(model)
        if path is None or not path.is_file():
            raise ValueError(f"camera {self.source_id!r}: model {model.name} is not installed "
                             f"(kinefuse models add FILE --sha256 {model.sha256}, or set its path)")  # fmt: skip
        return model, path

    async def run(self, ctx: SourceContext) -> None:
        capture, fps, expected = await asyncio.to_thread(self._open)
        self._lock, self._busy, self._closed = threading.Lock(), False, False
        live = _LatestFrameReader(capture) if _kind(self.options["path"]) != "file" else None
        try:
            meta = {"path": self.options["path"], "fps": fps, "model": self.options["model"]}
            meta.update(self._runtime())
            if self.calibration is not None:  # what the motion processor triangulates with
                meta["calibration"] = calibration_meta(self.calibration)
            ctx.add_device(DeviceInfo(self.device_id, DeviceKind.CAMERA, CLOCK_HZ,
                                      keypoint_set=self.keypoint_set, meta=meta))  # fmt: skip
            await self._stream(ctx, capture, fps, expected, live)
        finally:
            if live is not None:
                live.close()  # its thread releases the capture once its last read returns
            else:
                with self._lock:  # a read still running in its thread releases the capture when it returns
                    self._closed = True
                    if not self._busy:
                        capture.release()

    def _runtime(self) -> dict:
        """How the ONNX models compute here (int8 path, CPU, provider): each keypoint frame's provenance."""
        found = {}
        if hasattr(self.pose, "runtime"):
            found["pose_runtime"] = self.pose.runtime.meta()
        if self.topdown is not None:
            found["detector_runtime"] = self.topdown.detector.runtime.meta()
        return found

    async def _read(self, capture, live: _LatestFrameReader | None):
        """The next frame, or a TimeoutError after ``watchdog_s`` without one (the supervisor then
        restarts the source, which reconnects)."""
        watchdog = self.options["watchdog_s"]
        if live is not None:
            frame = await asyncio.to_thread(live.take, watchdog)
            if frame is _NO_FRAME:
                raise self._watchdog_error()
            return None if frame is None else (*frame[:2], await asyncio.to_thread(self._people, frame[2]))
        reading = asyncio.ensure_future(asyncio.to_thread(self._next, capture))
        done, _ = await asyncio.wait({reading}, timeout=watchdog)
        if not done:
            raise self._watchdog_error()
        return reading.result()

    def _watchdog_error(self) -> TimeoutError:
        return TimeoutError(f"camera {self.source_id!r}: no frame from {self.options['path']} for "
                            f"{self.options['watchdog_s']:g} s (watchdog)")  # fmt: skip

    def _open(self):
        import cv2

        where = self.options["path"]
        kind = _kind(where)
        is_file = kind == "file"
        if is_file and not Path(where).is_file():
            raise FileNotFoundError(f"camera {self.source_id!r}: video file {where} does not exist")
        if kind == "device" and not Path(where).exists():
            raise FileNotFoundError(f"camera {self.source_id!r}: device {where} does not exist (unplugged?)")
        capture = cv2.VideoCapture(where, cv2.CAP_FFMPEG, ffmpeg_params(self.options)) if kind != "device" \
            else cv2.VideoCapture(where)  # fmt: skip
        if not capture.isOpened():
            raise ValueError(f"camera {self.source_id!r}: cannot open {where} ({_WHY_NOT_OPEN[kind]})")
        if self.calibration is not None:
            size = (capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
            problem = size_problem(self.calibration, size, self.options, self.source_id)
            if problem:
                capture.release()
                raise ValueError(problem)
        fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
        expected = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if is_file else 0
        return capture, float(fps), expected

    async def _stream(self, ctx: SourceContext, capture, fps: float, expected: int, live) -> None:
        started = time.monotonic_ns()
        # a live stream's timestamps restart with each connection: count from the source's first connection,
        # so time runs on and the frames missed while reconnecting show as a jump in the sequence numbers
        epoch_s = (started - _FIRST_CONNECTION.setdefault(self.source_id, started)) / 1e9 if live else 0.0
        frames = 0
        dropped = 0
        while True:
            frame = await self._read(capture, live)
            if live is not None and live.dropped > dropped:  # frames the camera sent while pose was busy
                ctx.note_dropped(live.dropped - dropped)
                dropped = live.dropped
            if frame is None:
                break
            pts_s, host_ns, seen = frame
            frames += 1
            if self.options["realtime"]:
                delay = started + pts_s * 1e9 - time.monotonic_ns()
                if delay > 0:
                    await asyncio.sleep(delay / 1e9)
            elif live is None:
                await (
                    ctx.wait_for_room()
                )  # a file as fast as it decodes: slowed by the pipeline, never dropped
            t = epoch_s + pts_s
            ctx.emit(keypoint_batch(self.source_id, self.device_id, [round(t * fps)], [round(t * CLOCK_HZ)],
                                    [host_ns], self.keypoint_set,
                                    **seen.fields(KEYPOINT_COUNTS[self.keypoint_set])))  # fmt: skip
        if live is not None:
            raise ConnectionError(
                f"camera {self.source_id!r}: {self.options['path']} stopped after {frames} frames"
            )
        if expected and frames < expected - 1:
            raise EOFError(f"camera {self.source_id!r}: {self.options['path']} ended after {frames} of its "
                           f"{expected} frames: the file is truncated or damaged")  # fmt: skip

    def _next(self, capture):
        """Read and estimate one frame (worker thread): (pts seconds, host ns, people) or None at the end."""
        with self._lock:
            if self._closed:
                return None
            self._busy = True
        try:
            return self._estimate(capture)
        finally:
            with self._lock:
                self._busy = False
                if self._closed:
                    capture.release()

    def _estimate(self, capture):
        import cv2

        ok, image = capture.read()
        if not ok:
            return None
        host_ns = time.monotonic_ns()
        pts_s = capture.get(cv2.CAP_PROP_POS_MSEC) / 1e3
        return pts_s, host_ns, self._people(image)

    def _people(self, image) -> Seen:
        """The pose model on one frame (worker thread): the athlete's keypoints, or nobody, whether the
        tracker undid a left/right swap in them, and, top-down, the athlete's track id and everyone else
        seen in the frame. Top-down, the detector runs only when tracking needs it (topdown.Schedule); the
        others are seen only in the frames it runs in (in between only the athlete is followed)."""
        if self.topdown is None:
            result = self.pose(image).result
            return Seen(result[0] if len(result) else None)
        if self.tracker is None:
            self.tracker = Tracker((image.shape[1], image.shape[0]), self.options["athlete"],
                                   region=tuple(self.options["athlete_region"]))  # fmt: skip
        detections = self.topdown.detections
        frame = self.topdown.track(image, self.tracker)
        athlete = frame.athlete
        seen = athlete is not None and not athlete.missed
        others = [t for t in frame.tracks if t is not athlete and not t.missed] \
            if self.topdown.detections > detections else []  # fmt: skip
        return Seen(athlete.keypoints if seen else None, frame.swapped, athlete.track_id if seen else -1,
                    [(t.track_id, t.keypoints) for t in others])  # fmt: skip


_WHY_NOT_OPEN = {
    "file": "wrong format, or not a video",
    "rtsp": "no RTSP server answered there, or it has no such stream: check the URL",
    "device": "not a video capture device, or busy in another program",
}


def _kind(where: str) -> str:
    return "rtsp" if where.startswith("rtsp://") else "device" if where.startswith("/dev/") else "file"


_NO_FRAME = object()  # _LatestFrameReader.take timed out


class _LatestFrameReader:
    """A live stream's frames, read in a thread as fast as the camera sends them, keeping only the latest:
    a pose model slower than the camera never backs the stream up (latency stays one frame); frames replaced
    before they were taken are counted in ``dropped``. Before the first take (the models still warming up)
    the first frame is kept instead, so that no frame is let go before a recorded one. The thread owns the
    capture and releases it."""

    def __init__(self, capture):
        self.capture, self.dropped = capture, 0
        self._ready = threading.Condition()
        self._latest, self._ended, self._closed, self._taken = None, False, False, False
        threading.Thread(target=self._loop, name="camera-reader", daemon=True).start()

    def _loop(self) -> None:
        import cv2

        try:
            while not self._closed:
                ok, image = self.capture.read()
                host_ns = time.monotonic_ns()
                if not ok:
                    break
                frame = (self.capture.get(cv2.CAP_PROP_POS_MSEC) / 1e3, host_ns, image)
                with self._ready:
                    self.dropped += self._latest is not None
                    # until the first take the first frame is kept and later ones let go: every frame let
                    # go then falls after a frame that is recorded, a hole the frame numbers show
                    if self._latest is None or self._taken:
                        self._latest = frame
                    self._ready.notify()
        finally:
            with self._ready:
                self._ended = True
                self._ready.notify()
            self.capture.release()

    def take(self, timeout: float):
        """The newest frame (pts s, host ns, image); None once the stream ended; _NO_FRAME after ``timeout``."""
        with self._ready:
            self._ready.wait_for(lambda: self._latest is not None or self._ended, timeout)
            frame, self._latest = self._latest, None
            self._taken = self._taken or frame is not None
        if frame is None:
            return None if self._ended else _NO_FRAME
        return frame

    def close(self) -> None:
        self._closed = True


SPEC = SourceSpec("camera", CameraSource, SCHEMA, __doc__.strip(), check=problems)
