"""gaitmap (MaD-Lab Erlangen; Küderle et al. 2024, JOSS), the bench's peer on the gaitmap recordings, run as
its documentation's pipeline runs it. An optional bench extra (``pip install '.[bench]'``; gaitmap_mad, which
its algorithms live in, is AGPL): imported inside the bench's scoring functions only, never by the daemon."""

from __future__ import annotations

from pathlib import Path

from kinefuse.bench.datasets import gaitmap

NOT_INSTALLED = "gaitmap not installed ({}): pip install '.[bench]' and see the Makefile"


def gaitmap_strides(imu: Path):
    """gaitmap's pipeline on the recording as its documentation runs it: the data aligned to gravity, in its
    foot body frame, and BarthDtw's strides. Raises ImportError without gaitmap."""
    import pandas as pd
    from gaitmap.preprocessing import sensor_alignment
    from gaitmap.stride_segmentation import BarthDtw
    from gaitmap.utils.coordinate_conversion import convert_to_fbf

    data = pd.read_csv(imu, header=[0, 1], index_col=0)
    aligned = sensor_alignment.align_dataset_to_gravity(data, gaitmap.RATE_HZ)
    body = convert_to_fbf(aligned, left_like="left_", right_like="right_")
    return aligned, body, BarthDtw().segment(data=body, sampling_rate_hz=gaitmap.RATE_HZ).stride_list_
