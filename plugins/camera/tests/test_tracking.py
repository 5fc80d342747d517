"""Tracking on the synthetic camera: the athlete keeps one id while a passer-by crosses, and the
detector's left/right swaps are caught and undone."""

import importlib.resources

import numpy as np
import pytest

from kinefuse.sim.scenario import load_scenario
from kinefuse.sim.simulate import Simulation
from kinefuse_plugins.camera.tracking import Tracker


def boxes_of(people):
    """A box around each person's visible keypoints (the test's stand-in for a detector)."""
    out = []
    for person in people:
        seen = person[person[:, 2] > 0.3, :2]
        if len(seen) < 5:
            continue
        (x1, y1), (x2, y2) = seen.min(axis=0), seen.max(axis=0)
        out.append((x1 - 20, y1 - 20, x2 + 20, y2 + 20, 0.9))
    return np.array(out).reshape(-1, 5)


@pytest.fixture(scope="module")
def side_camera():
    path = importlib.resources.files("kinefuse.scenarios") / "walk_asymmetric.toml"
    chunk = Simulation(load_scenario(str(path))).camera_chunk(0, 0.0, 60.0)
    return chunk


def test_the_athlete_keeps_one_id_while_a_passer_by_crosses(side_camera):
    tracker = Tracker((1280, 720))
    athlete_ids, others = [], set()
    passer = side_camera.others[0].keypoints
    for f in range(len(side_camera.t)):
        people = [p for p in (side_camera.track.keypoints[f], passer[f])
                  if (p[:, 2] > 0.3).sum() >= 5]  # fmt: skip
        frame = tracker.update(
            boxes_of(people), np.array(people, dtype=np.float64).reshape(len(people), 17, 3)
        )
        athlete_ids.append(frame.athlete_id)
        others |= {t.track_id for t in frame.tracks} - {frame.athlete_id}
    assert len(set(athlete_ids)) == 1 and athlete_ids[0] is not None
    assert others, "the passer-by got a track of their own"


def test_left_right_swaps_are_caught_and_undone(side_camera):
    tracker = Tracker((1280, 720))
    truth = side_camera.track.swapped
    caught, false_alarms, restored = [], 0, []
    for f in range(len(side_camera.t)):
        person = side_camera.track.keypoints[f].astype(np.float64)
        frame = tracker.update(boxes_of([person]), person[None])
        if truth[f]:
            caught.append(frame.swapped)
            if frame.swapped:
                fixed = frame.athlete.keypoints
                restored.append(np.nanmean(np.abs(fixed[5:, :2] - side_camera.track.truth_xy[f, 5:])))
        else:
            false_alarms += frame.swapped
    assert sum(truth) >= 5
    assert np.mean(caught) >= 0.8
    assert false_alarms <= 0.01 * len(truth)
    assert np.nanmedian(restored) < 10.0  # pixels: the undone frame sits on the true keypoints


def test_the_athlete_can_be_whoever_stands_in_a_configured_region():
    """A large person at the left, a smaller one on the treadmill at the right: ``region`` picks the one on
    the treadmill, ``largest`` the other; with nobody in the region there is no athlete."""
    people = np.zeros((2, 17, 3))
    big, small = (100, 100, 500, 700, 0.9), (900, 300, 1100, 650, 0.9)
    treadmill = (0.6, 0.3, 1.0, 1.0)
    in_region = Tracker((1280, 720), "region", region=treadmill).update(np.array([big, small]), people)
    largest = Tracker((1280, 720), "largest").update(np.array([big, small]), people)
    nobody = Tracker((1280, 720), "region", region=treadmill).update(np.array([big]), people[:1])
    assert in_region.athlete is not None and in_region.athlete.box[0] == 900
    assert largest.athlete.box[0] == 100
    assert nobody.athlete_id is None and len(nobody.tracks) == 1


@pytest.mark.parametrize("region", [(), (0.5, 0.2, 0.4, 0.9), (0.0, 0.0, 1.2, 1.0)])
def test_a_region_rule_without_a_sound_region_is_refused(region):
    with pytest.raises(ValueError, match="needs a region"):
        Tracker((1280, 720), "region", region=region)
