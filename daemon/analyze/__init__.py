"""``kinefuse analyze``: a stored session processed again from its raw samples and frames, written beside the
live stream as a new analysis (an ``analyses`` row; motion rows carrying its id).

- ``live``: the live ``motion`` processor over the stored batches in arrival order, with the settings the
  session ran with: it reproduces the stored live stream (docs/fusion.md, "Offline analysis").
- ``offline``: acausal estimates over the whole recording (kinefuse.analyze.offline).

In both, the processors listed after the motion processor in the config (the metrics over the motion
stream: joint angles, gait; another motion processor aside) run again, chained as the daemon chains them
(kinefuse.analyze.replay): over the stored batches, and over the analysis's motion items (live: each
batch's as they are made; offline: all of them first). Their metrics and events are stored with the
analysis's id.

The session's processor options are not stored with it; they come from the config file it ran with
(``sessions.config_path``, read now: an edit since, or an environment override then, is not seen), or from
``config_path`` when given, or are the defaults when neither names a ``motion`` processor (and then no
processor runs after it). The analysis row records the options used and where they came from.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path

from kinefuse.analyze.offline import offline_items
from kinefuse.analyze.offline_fusion import shifted
from kinefuse.analyze.replay import batches, declarations, replay_chain
from kinefuse.analyze.store import AnalysisSink
from kinefuse.builtin.processors.motion_stream import SCHEMA, MotionStream
from kinefuse.storage import reader
from kinefuse.types import DerivedValue, DeviceKind, Event, MotionItem

MODES = ("live", "offline")
PROCESSOR_TYPE = "motion"


@dataclasses.dataclass(frozen=True)
class Analysis:
    """What one analysis did: its row, the inputs and outputs counted, and the time it took (s, wall)."""

    analysis_id: int
    session_id: int
    mode: str
    settings: dict
    samples: int
    frames: int
    items: int
    derived: int  # metrics and events of the processors after the motion processor
    recording_s: float
    compute_s: float
    write_s: float


def motion_settings(session: dict, config_path: Path | None = None) -> dict:
    """The ``motion`` processor's id and options for this session, the processors listed after it
    (``after_motion``: id, type and options of each) and where they came from."""
    if config_path is not None and not Path(config_path).is_file():
        raise ValueError(f"{config_path}: no such config file (--config)")
    path = config_path or (Path(session["config_path"]) if session.get("config_path") else None)
    defaults = {key: field.default for key, field in SCHEMA.items()}
    if path is None or not path.is_file():
        why = "no config recorded" if path is None else f"config {path} not found"
        return {"processor_id": PROCESSOR_TYPE, "options": defaults, "after_motion": [],
                "from": f"defaults ({why})"}  # fmt: skip
    from kinefuse.config import load_config  # the registry validates every processor's options
    from kinefuse.plugin_loader import load_plugins

    config = load_config(path, load_plugins())
    motion = [c for c in config.processors if c.type == PROCESSOR_TYPE]
    if not motion:
        return {"processor_id": PROCESSOR_TYPE, "options": defaults, "after_motion": [],
                "from": f"defaults (config {path} has no {PROCESSOR_TYPE} processor)"}  # fmt: skip
    # another motion processor is a second stream, not a metric over this one
    after = [
        c for c in config.processors[config.processors.index(motion[0]) + 1 :] if c.type != PROCESSOR_TYPE
    ]
    return {"processor_id": motion[0].id, "options": dict(motion[0].options), "from": str(path),
            "after_motion": [{"id": c.id, "type": c.type, "options": dict(c.options)} for c in after]}  # fmt: skip


def analyze(
    db_path: str | Path, session: str | int, mode: str = "live", config_path: Path | None = None,
    camera_offsets: dict[str, float] | None = None,
) -> Analysis:  # fmt: skip
    """Analyse ``session`` (its id or uuid prefix) of the database at ``db_path`` and store the result there,
    each camera's stored times first moved by its ``camera_offsets`` (device id: s; e.g. what post-hoc
    synchronisation found). LookupError for an unknown session, ValueError for an unknown mode or a device
    that is not one of the session's cameras (naming the file)."""
    if mode not in MODES:
        raise ValueError(f"{db_path}: unknown analysis mode {mode!r}; expected one of {', '.join(MODES)}")
    row = reader.find_session(db_path, session)
    settings = {**motion_settings(row, config_path), "mode": mode}
    devices = reader.session_devices(db_path, row["id"])
    inputs = batches(reader.stored_batches(db_path, row["id"]), devices)
    if camera_offsets:
        inputs = _moved(db_path, devices, inputs, camera_offsets)
        settings["camera_offsets_s"] = dict(camera_offsets)
    started = time.perf_counter()
    motion_id, chain = settings["processor_id"], _chain(settings["after_motion"])
    if mode == "live":
        motion = MotionStream(settings["options"], motion_id)
        made = replay_chain([(motion_id, motion), *chain], declarations(devices), inputs)
        # the motion processor's events (camera offsets, drift, association) are the live session's already
        items = [item for pid, item in made if pid == motion_id and isinstance(item, MotionItem)]
    else:
        found = {}
        items = offline_items(settings["options"], motion_id, declarations(devices), inputs, found)
        settings["found"] = (
            found  # what the whole recording gave: each strap's mounting, each camera's offset
        )
        made = replay_chain(chain, declarations(devices), inputs, observed=items)
    derived = [item for pid, item in made if pid != motion_id and isinstance(item, (DerivedValue, Event))]
    computed = time.perf_counter()
    analysis_id = asyncio.run(_store(db_path, row["id"], mode, settings, items + derived))
    samples = sum(len(b) for b in inputs if hasattr(b, "gyr"))
    times = [t for b in inputs if b.time_ns is not None for t in (int(b.time_ns.min()), int(b.time_ns.max()))]
    return Analysis(analysis_id, row["id"], mode, settings, samples, sum(len(b) for b in inputs) - samples,
                    len(items), len(derived), (max(times) - min(times)) / 1e9 if times else 0.0,
                    computed - started, time.perf_counter() - computed)  # fmt: skip


def _chain(configs: list[dict]) -> list[tuple[str, object]]:
    """The processors after the motion processor, built as the daemon builds them (their plugins loaded)."""
    if not configs:
        return []
    from kinefuse.plugin_loader import load_plugins

    registry = load_plugins()
    return [(c["id"], registry.processors[c["type"]].factory(c["options"], c["id"])) for c in configs]


def _moved(db_path, devices: list[dict], inputs: list, offsets: dict[str, float]) -> list:
    cameras = {
        d["device_id"]: (d["source_id"], d["device_id"]) for d in devices if d["kind"] == DeviceKind.CAMERA
    }
    unknown = sorted(set(offsets) - set(cameras))
    if unknown:
        raise ValueError(f"{db_path}: no camera {unknown} in the session (its cameras: {sorted(cameras)})")
    offset_ns = {cameras[device]: round(seconds * 1e9) for device, seconds in offsets.items()}
    return [shifted(batch, offset_ns) for batch in inputs]


async def _store(db_path, session_id: int, mode: str, settings: dict, items: list) -> int:
    sink = AnalysisSink(db_path, session_id, mode, settings)
    await sink.start(None)
    try:
        for start in range(0, len(items), 1000):
            await sink.write(items[start : start + 1000])
    except BaseException as exc:
        sink.failure = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        await sink.stop([])
    return sink.analysis_id
