import numpy as np
import pytest

from kinefuse.bench.datasets.gaitmap import AXES, RATE_HZ, find_recordings, load_imu, load_stride_events
from kinefuse.bench.datasets.paths import shared_dir

SHARED = shared_dir()
GAITMAP = SHARED / "data" / "gaitmap"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared data folder {SHARED} is absent")


def _write_imu(path, rows: int = 4) -> None:
    sensors = ["sensor"] + [f"{side}_sensor" for axis in AXES for side in ("left", "right")]
    axes = ["axis"] + [axis for axis in AXES for _ in ("left", "right")]
    lines = [",".join(sensors), ",".join(axes)]
    lines += [",".join([str(i)] + [str(i + j / 10) for j in range(12)]) for i in range(rows)]
    path.write_text("\n".join(lines) + "\n")


def test_imu_columns_units_and_time(tmp_path):
    path = tmp_path / "imu_x.csv"
    _write_imu(path)
    feet = load_imu(path, rate_hz=100.0)
    assert sorted(feet) == ["left", "right"]
    left = feet["left"]
    np.testing.assert_allclose(left.time_s, [0.0, 0.01, 0.02, 0.03])
    # columns alternate left, right per axis: left acc_x is column 1, left gyr_x column 7
    np.testing.assert_allclose(left.acc[1], [1.0, 1.2, 1.4])
    np.testing.assert_allclose(left.gyr[1], np.deg2rad([1.6, 1.8, 2.0]))
    np.testing.assert_allclose(feet["right"].acc[0], [0.1, 0.3, 0.5])


def test_imu_missing_axis_is_named(tmp_path):
    path = tmp_path / "imu_x.csv"
    path.write_text("sensor,left_sensor,left_sensor\naxis,acc_x,acc_y\n0,1,2\n")
    with pytest.raises(ValueError, match=r"imu_x\.csv: sensor 'left_sensor' lacks columns \['acc_z'"):
        load_imu(path)


def test_imu_needs_the_two_header_rows(tmp_path):
    path = tmp_path / "imu_x.csv"
    path.write_text("acc_x,acc_y\n1,2\n")
    with pytest.raises(ValueError, match="two header rows"):
        load_imu(path)


def test_stride_events_missing_column_is_named(tmp_path):
    path = tmp_path / "stride_events_x.csv"
    path.write_text("s_id,foot,start,end,ic,tc\n0,left,1,2,3,4\n")
    with pytest.raises(ValueError, match=r"missing columns \['min_vel', 'pre_ic'\]"):
        load_stride_events(path)


def test_find_recordings_pairs_imu_with_events(tmp_path):
    for name in ("imu_a.csv", "stride_events_a.csv", "imu_b.csv", "stride_borders_a.csv"):
        (tmp_path / name).write_text("")
    (found,) = find_recordings(tmp_path)
    assert (found.name, found.imu.name, found.stride_events.name) == ("a", "imu_a.csv", "stride_events_a.csv")


@needs_shared
def test_shared_sample_events_lie_inside_the_recording_in_gait_order():
    (recording,) = find_recordings(GAITMAP)
    feet = load_imu(recording.imu)
    events = load_stride_events(recording.stride_events)
    assert sorted(events) == sorted(feet) == ["left", "right"]
    for side, strides in events.items():
        imu = feet[side]
        n = len(imu.time_s)
        assert imu.rate_hz == RATE_HZ and imu.acc.shape == imu.gyr.shape == (n, 3)
        # a foot at rest reads gravity; walking turns it well over 100 deg/s
        assert np.median(np.linalg.norm(imu.acc, axis=1)) == pytest.approx(9.81, abs=1.5)
        assert np.max(np.abs(imu.gyr)) > np.deg2rad(100.0)
        assert len(strides) > 10
        for name in ("start", "end", "ic", "tc", "min_vel", "pre_ic"):
            assert np.all((strides[name] >= 0) & (strides[name] < n)), (side, name)
        # min_vel to min_vel: the foot leaves the ground (tc), lands (ic), and stands again
        assert np.all(strides["min_vel"] == strides["start"])
        assert np.all(strides["pre_ic"] < strides["start"])
        assert np.all(strides["start"] < strides["tc"])
        assert np.all(strides["tc"] < strides["ic"])
        assert np.all(strides["ic"] < strides["end"])
        # where strides follow each other, pre_ic is the previous stride's ic and the tc comes after it
        follows = strides["start"][1:] == strides["end"][:-1]
        assert follows.sum() > len(strides) // 2
        np.testing.assert_array_equal(strides["pre_ic"][1:][follows], strides["ic"][:-1][follows])
        assert np.all(strides["tc"][1:][follows] > strides["ic"][:-1][follows])
