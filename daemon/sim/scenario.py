"""Scenario files: TOML describing the athlete, the motion, the cameras and IMUs and their error models.

Validated as strictly as the daemon's config (kinefuse.configschema): unknown keys, wrong types and
out-of-range values are all reported together with file and line. Error-model tables accept exactly
the fields of their dataclass (ImuErrors, DetectorErrors, Link), so the file and the code cannot drift.
See docs/simulation.md for the format and scenarios/ for examples.
"""

from __future__ import annotations

import dataclasses
import tomllib
import typing
from pathlib import Path

from kinefuse.configschema import REQUIRED, ConfigError, ConfigInvalid, Field, Validator
from kinefuse.sim.motions import GAIT_KINDS, controls_for
from kinefuse.sim.motions import KINDS as MOTION_KINDS

_OPTIONAL = None  # a motion control left out takes the motion's own default
# how the motion is played rather than what it is: not a control of kinefuse.sim.motions.make_motion
_PLAYING = ("kind", "treadmill", "stride_time_cv_pct", "standing_start_s")
# stride-time variability of healthy walking: about 2 % (1-3 % is usual in healthy adults; the gaitmap
# walker in the shared data has 2.8 %); see docs/simulation.md, "Realism of the IMU signals"
DEFAULT_STRIDE_TIME_CV_PCT = 2.0


def _vector(doc: str, length: int = 3) -> Field:
    return Field(list, REQUIRED, f"{doc} ({length} numbers)", item_type=float)


SECTIONS: dict[str, dict[str, Field]] = {
    "scenario": {
        "name": Field(str, REQUIRED, "short name, used in bench tables"),
        "description": Field(str, "", "what the scenario shows"),
        "duration_s": Field(float, 30.0, "length of the recording", min=1.0, max=86_400.0),
        "seed": Field(int, 0, "random seed: same seed, same bytes"),
    },
    "athlete": {
        "height_m": Field(float, 1.75, "body height; segment lengths scale with it", min=1.0, max=2.3),
    },
    "motion": {
        "kind": Field(str, "walk", "the task performed", choices=MOTION_KINDS),
        "treadmill": Field(
            bool,
            False,
            "walk or run on the spot, as on a treadmill, so fixed cameras keep the "
            "athlete in view (accelerations are those of travelling at constant speed)",
        ),
        "stride_time_cv_pct": Field(
            float,
            _OPTIONAL,
            f"stride-to-stride variation of stride time, coefficient of variation (walk, run; default "
            f"{DEFAULT_STRIDE_TIME_CV_PCT:g}; 0: every stride the same)",
            min=0.0,
            max=10.0,
        ),
        "standing_start_s": Field(
            float,
            0.0,
            "stand still this long first, then fade the motion in over 2 s (0: the motion from the start)",
            min=0.0,
            max=600.0,
        ),
        "cadence_spm": Field(float, _OPTIONAL, "steps per minute (walk, run)", min=20.0, max=240.0),
        "speed_mps": Field(float, _OPTIONAL, "travel speed (walk, run)", min=0.1, max=10.0),
        "step_length_m": Field(float, _OPTIONAL, "step length (walk, run)", min=0.1, max=2.5),
        "stance_asymmetry": Field(
            float, _OPTIONAL, "right stance time longer than left by this fraction", min=-0.5, max=0.5
        ),
        "step_asymmetry": Field(
            float,
            _OPTIONAL,
            "right step longer than left by this fraction; negative: left longer (walk)",
            min=-0.1,
            max=0.1,
        ),
        "knee_valgus_deg": Field(float, _OPTIONAL, "knee valgus on landing or squatting", min=0.0, max=30.0),
        "trunk_lean_deg": Field(float, _OPTIONAL, "forward trunk lean", min=-30.0, max=45.0),
        "rep_period_s": Field(
            float, _OPTIONAL, "seconds per repetition (non-cyclic tasks)", min=0.5, max=60.0
        ),
        "trunk_lateral_lean_deg": Field(
            float, _OPTIONAL, "trunk lean to the left (walk)", min=-30.0, max=30.0
        ),
        "knee_rom_scale": Field(float, _OPTIONAL, "scale of the knee flexion range", min=0.2, max=2.0),
        "sway_deg": Field(float, _OPTIONAL, "postural sway (single_leg_balance)", min=0.0, max=10.0),
        "drop_height_m": Field(float, _OPTIONAL, "drop height (drop_landing)", min=0.1, max=1.0),
        "stance_leg": Field(str, _OPTIONAL, "standing leg (single_leg_balance)", choices=("left", "right")),
        "lead_leg": Field(str, _OPTIONAL, "front leg (lunge)", choices=("left", "right")),
        "session_week": Field(float, _OPTIONAL, "weeks since the first session (slow change)", min=0.0),
        "knee_flexion_change_deg_per_week": Field(
            float, _OPTIONAL, "change of peak knee flexion per week", min=-10.0, max=10.0
        ),
    },
}
PERSON = {
    "kind": Field(str, "walk", "the task this person performs", choices=MOTION_KINDS),
    "height_m": Field(float, 1.75, "body height", min=1.0, max=2.3),
    "origin_xy": Field(list, [0.0, 0.0], "start position on the floor (m)", item_type=float),
    "heading_deg": Field(float, 0.0, "direction of travel, counter-clockwise from +x"),
}
CAMERA = {
    "name": Field(str, REQUIRED, "camera name (its calibration table and file names)"),
    "position": _vector("camera centre in the world, metres"),
    "target": _vector("the point it looks at"),
    "size": Field(list, [1280, 720], "image width and height in pixels", item_type=int),
    "focal_px": Field(float, 1000.0, "focal length in pixels", min=50.0, max=20_000.0),
    "distortions": Field(list, [0.0, 0.0, 0.0, 0.0], "k1, k2, p1, p2 (OpenCV model)", item_type=float),
    "fps": Field(float, 30.0, "frame rate", min=1.0, max=1000.0),
    "keypoint_set": Field(str, "COCO-17", "keypoints the detector reports"),
    "clock_hz": Field(float, 90_000.0, "the frame timestamp clock", min=1.0),
    "clock_offset_s": Field(float, 0.0, "device clock reading at true time 0"),
    "clock_skew_ppm": Field(float, 0.0, "device clock runs fast by this much", min=-1000.0, max=1000.0),
    "render": Field(bool, False, "also write a rendered video of the body"),
    "bump_at_s": Field(float, 0.0, "from this time the camera is turned by bump_deg (0: never)", min=0.0),
    "bump_deg": Field(
        list,
        [0.0, 0.0, 0.0],
        "a bump: x-y-z Euler angles about the camera's own axes; its calibration stays",
        item_type=float,
    ),
    "follows_person_s": Field(
        list,
        [],
        "from, to (s): the camera's tracker follows the first of [[people]], not the athlete (the synthetic "
        "source)",
        item_type=float,
    ),
}
OCCLUDER = {
    "keypoints": Field(list, REQUIRED, "keypoints hidden", item_type=str),
    "around": Field(
        str,
        "",
        "centre the window on each of these gait events: left_ic, right_ic, left_tc, right_tc",
        choices=("", "left_ic", "right_ic", "left_tc", "right_tc"),
    ),
    "frames": Field(int, 10, "window length in frames, with around", min=1),
    "start_s": Field(float, 0.0, "window start, without around", min=0.0),
    "end_s": Field(float, 0.0, "window end, without around", min=0.0),
}
IMU = {
    "name": Field(str, REQUIRED, "device name"),
    "segment": Field(str, REQUIRED, "body segment the strap is on"),
    "offset_m": Field(list, [0.0, 0.0, 0.0], "strap position in the segment frame", item_type=float),
    "mounting_deg": Field(
        list, [0.0, 0.0, 0.0], "sensor orientation on the segment: x-y-z Euler angles", item_type=float
    ),
    "rate_hz": Field(float, 100.0, "sample rate", min=1.0, max=4000.0),
    "preset": Field(
        str, "perfect", "error preset (kinefuse.sim.imu.PRESETS); [imus.errors] overrides fields"
    ),
    "magnetometer": Field(bool, True, "the strap has a magnetometer"),
    "clock_hz": Field(float, 1e6, "the sample timestamp clock", min=1.0),
    "clock_offset_s": Field(float, 0.0, "device clock reading at true time 0"),
    "clock_skew_ppm": Field(float, 0.0, "device clock runs fast by this much", min=-1000.0, max=1000.0),
}
MAGNETIC = {
    "heading_deg": Field(float, 0.0, "direction of magnetic north, counter-clockwise from +y"),
}
DISTURBANCE = {
    "position": _vector("position of the ferrous object, metres"),
    "moment_Am2": _vector("its magnetic dipole moment, A m^2"),
}


def override_schema(cls: type, exclude: tuple[str, ...] = ()) -> dict:
    """A schema for overriding fields of an error-model dataclass: every key optional (None keeps the
    dataclass's value); a nested dataclass field becomes a nested table."""
    hints = typing.get_type_hints(cls)
    schema: dict = {}
    for field in dataclasses.fields(cls):
        kind = hints[field.name]
        if field.name in exclude:
            continue
        if dataclasses.is_dataclass(kind):
            schema[field.name] = override_schema(kind)
        elif kind in (float, int, bool, str):
            schema[field.name] = Field(kind, None, f"default {field.default!r}")
        else:  # fixed-size tuples: vectors and matrices
            schema[field.name] = Field(list, None, f"default {field.default!r}")
    return schema


def apply_overrides(base, overrides: dict):
    """``base`` with the non-None values of ``overrides`` (a table checked against override_schema)."""
    changes = {}
    for name, value in overrides.items():
        current = getattr(base, name)
        if isinstance(value, dict):
            changes[name] = apply_overrides(current, value)
        elif value is not None:
            changes[name] = _as_tuple(value) if isinstance(value, list) else value
    return dataclasses.replace(base, **changes)


def _as_tuple(value: list) -> tuple:
    return tuple(_as_tuple(v) if isinstance(v, list) else float(v) for v in value)


@dataclasses.dataclass(frozen=True)
class Scenario:
    path: Path
    sections: dict[str, dict]
    people: list[dict]
    cameras: list[dict]  # each with "detector", "link" and "occluders"
    imus: list[dict]  # each with "errors" and "link"
    disturbances: list[dict]

    @property
    def name(self) -> str:
        return self.sections["scenario"]["name"]

    def motion_controls(self) -> dict:
        return {k: v for k, v in self.sections["motion"].items() if k not in _PLAYING and v is not None}

    @property
    def stride_time_cv(self) -> float:
        """The stride-time coefficient of variation the athlete walks or runs with (a fraction; 0 for tasks)."""
        motion = self.sections["motion"]
        if motion["kind"] not in GAIT_KINDS:
            return 0.0
        value = motion.get("stride_time_cv_pct")
        return (DEFAULT_STRIDE_TIME_CV_PCT if value is None else float(value)) / 100.0


def load_scenario(path: Path | str) -> Scenario:
    """Parse and validate a scenario file; ConfigInvalid carries every error with its line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigInvalid([ConfigError(str(path), None, "-", f"cannot read scenario: {exc}")]) from exc
    check = Validator(str(path), text, path.resolve().parent)
    tables = {*SECTIONS, "people", "cameras", "imus", "magnetic"}
    for key in data:
        if key not in tables:
            check.error((key,), f"unknown table (known tables: {', '.join(sorted(tables))})")
    sections = {
        name: check.check_table(data.get(name, {}), schema, (name,)) for name, schema in SECTIONS.items()
    }
    magnetic = data.get("magnetic", {})
    sections["magnetic"] = check.check_table(magnetic, MAGNETIC, ("magnetic",), ignore=("disturbances",))
    scenario = Scenario(
        path,
        sections,
        people=_entries(check, data, ("people",), PERSON, {}),
        cameras=_entries(check, data, ("cameras",), CAMERA, _camera_subtables()),
        imus=_entries(check, data, ("imus",), IMU, _imu_subtables()),
        disturbances=_entries(check, magnetic, ("magnetic", "disturbances"), DISTURBANCE, {}),
    )
    _check_names(check, scenario)
    _check_motion_controls(check, sections["motion"])
    if check.errors:
        raise ConfigInvalid(check.errors)
    return scenario


def _camera_subtables() -> dict:
    from kinefuse.sim.detector_model import DetectorErrors
    from kinefuse.sim.timing import Link

    return {
        "detector": override_schema(DetectorErrors, exclude=("occluders",)),  # [[cameras.occluders]] instead
        "link": override_schema(Link),
        "occluders": OCCLUDER,
    }


def _imu_subtables() -> dict:
    from kinefuse.sim.imu import ImuErrors
    from kinefuse.sim.timing import Link

    return {"errors": override_schema(ImuErrors), "link": override_schema(Link)}


def _entries(check: Validator, data: dict, path: tuple, schema: dict, subtables: dict) -> list[dict]:
    """Validate an array of tables, each with its sub-tables (occluders: an array of tables)."""
    entries = data.get(path[-1], [])
    if not isinstance(entries, list):
        check.error(path, "expected an array of tables")
        return []
    out = []
    for index, entry in enumerate(entries):
        where = (*path, index)
        values = check.check_table(entry, schema, where, ignore=tuple(subtables))
        for name, sub_schema in subtables.items():
            sub = entry.get(name, [] if name == "occluders" else {}) if isinstance(entry, dict) else {}
            if name == "occluders":
                values[name] = [
                    check.check_table(o, sub_schema, (*where, name, i)) for i, o in enumerate(sub)
                ]
            else:
                values[name] = _nested_table(check, sub, sub_schema, (*where, name))
        out.append(values)
    return out


def _nested_table(check: Validator, table, schema: dict, path: tuple) -> dict:
    """check_table, recursing into nested schemas (a dict of Fields inside the schema)."""
    nested = [key for key, field in schema.items() if isinstance(field, dict)]
    flat = {key: field for key, field in schema.items() if not isinstance(field, dict)}
    values = check.check_table(table, flat, path, ignore=tuple(nested))
    for key in nested:
        sub = table.get(key, {}) if isinstance(table, dict) else {}
        values[key] = _nested_table(check, sub, schema[key], (*path, key))
    return values


def _check_motion_controls(check: Validator, motion: dict) -> None:
    if motion.get("kind") not in MOTION_KINDS:
        return  # already reported
    allowed = controls_for(motion["kind"])
    for key, value in motion.items():
        if key not in _PLAYING and value is not None and key not in allowed:
            check.error(
                ("motion", key), f"does not apply to {motion['kind']!r} (it takes {', '.join(allowed)})"
            )
    if motion.get("stride_time_cv_pct") is not None and motion["kind"] not in GAIT_KINDS:
        check.error(("motion", "stride_time_cv_pct"), "only a walk or a run has strides to vary")
    if motion["treadmill"] and motion["kind"] not in ("walk", "run"):
        check.error(("motion", "treadmill"), "only a walk or a run can be on a treadmill")


def _check_follows(check: Validator, position: int, span: list, people: bool) -> None:
    if len(span) != 2 or not 0 <= span[0] < span[1]:
        check.error(
            ("cameras", position, "follows_person_s"), f"expected [from, to] with 0 <= from < to, got {span}"
        )
    elif not people:
        check.error(("cameras", position, "follows_person_s"), "there is nobody else: add a [[people]] table")


def _check_names(check: Validator, scenario: Scenario) -> None:
    from kinefuse.sim.body import SEGMENTS
    from kinefuse.sim.detector_model import KEYPOINT_SETS
    from kinefuse.sim.imu import PRESETS

    devices = [("cameras", c) for c in scenario.cameras] + [("imus", i) for i in scenario.imus]
    seen: set[str] = set()
    for index, (table, device) in enumerate(devices):
        position = index if table == "cameras" else index - len(scenario.cameras)
        name = device.get("name")
        if name in seen:
            check.error((table, position, "name"), f"duplicate device name {name!r}")
        seen.add(name)
        if table == "imus" and device.get("segment") not in SEGMENTS:
            check.error((table, position, "segment"), f"expected one of {', '.join(SEGMENTS)}")
        if table == "imus" and device.get("preset") not in PRESETS:
            check.error((table, position, "preset"), f"expected one of {', '.join(PRESETS)}")
        if table == "cameras" and device.get("keypoint_set") not in KEYPOINT_SETS:
            check.error((table, position, "keypoint_set"), f"expected one of {', '.join(KEYPOINT_SETS)}")
        if table == "cameras" and device.get("follows_person_s"):
            _check_follows(check, position, device["follows_person_s"], bool(scenario.people))
