"""Post-hoc camera offsets from keypoint speeds, on the synthetic athlete walking before four cameras through
the detector model fitted to MoveNet: offsets up to 100 ms come back within a frame, and a camera that does
not see the same movement says so."""

import numpy as np
import pytest

from kinefuse.bench.scoring.detector_realism import FITTED
from kinefuse.sim.body import Body, BodyShape
from kinefuse.sim.camera_rig import ring
from kinefuse.sim.detector_model import simulate_keypoints
from kinefuse.sim.motions import make_motion
from kinefuse_plugins.multiview.synchronisation import estimate_offsets

FPS, SECONDS = 30.0, 20.0
CAMERAS = ring(4, 4.0, 1.2, (0.0, 0.0, 0.9), (1280, 720), 900.0, start_deg=20.0)


def walking_tracks(offsets_s, seed=0, motion="walk"):
    """Each camera's detections of 20 s of treadmill walking, camera c seeing the world ``offsets_s[c]`` later
    than its frame times say (its clock is that far behind)."""
    shape = BodyShape()
    body = Body(shape, make_motion(motion, shape), treadmill=motion == "walk")
    times = np.arange(round(SECONDS * FPS)) / FPS
    tracks = {}
    for index, (cam, offset) in enumerate(zip(CAMERAS, offsets_s, strict=True)):
        seen = times + offset
        track = simulate_keypoints(cam, "COCO-17", body.landmarks(seen), body.capsules(seen), times, FITTED,
                                   np.random.default_rng([seed, index]))  # fmt: skip
        tracks[cam.name] = (times, track.keypoints.astype(np.float64))
    return tracks


@pytest.mark.parametrize("seed", range(3))
def test_offsets_up_to_100_ms_come_back_within_a_frame(seed):
    truth = [0.0, 0.1, -0.067, 0.033]
    found = estimate_offsets(walking_tracks(truth, seed))
    assert [f.camera for f in found] == [c.name for c in CAMERAS]
    for f, offset in zip(found[1:], truth[1:], strict=True):
        assert f.offset_s is not None, f.reason
        assert abs(f.offset_s - offset) < 1.0 / FPS, (f, offset)
        assert 0.0 < f.correlation <= 1.0


def test_a_camera_that_sees_someone_else_is_refused():
    tracks = walking_tracks([0.0, 0.0, 0.0, 0.0])
    times, keypoints = tracks[CAMERAS[3].name]
    other = walking_tracks([0.0, 0.0, 0.0, 0.0], seed=7, motion="squat")[CAMERAS[3].name][1]
    tracks[CAMERAS[3].name] = (times, other)  # a squatting person, not the walker
    found = estimate_offsets(tracks)
    assert found[3].offset_s is None and found[3].reason.startswith("insufficient")
    assert all(f.offset_s is not None for f in found[:3])
