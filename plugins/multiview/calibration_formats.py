"""Calibration files of other tools read into ``kinefuse.camera_calibration.CameraCalibration`` (Pose2Sim's
conventions: world to camera, metres, OpenCV's lens model). Pose2Sim TOML is read and written by
``kinefuse.camera_calibration``; this module adds Qualisys QTM's ``.qca.txt`` export (read) and anipose's
TOML (read and written).

Anipose (aniposelib ``CameraGroup.dump``/``load``): one table per camera keyed ``cam_0``, ``cam_1``, ...,
each with ``name``, ``size`` [width, height], ``matrix``, ``distortions`` (k1, k2, p1, p2, k3; four with
``fisheye = true``), ``rotation`` (Rodrigues, world to camera), ``translation``, then ``[metadata]``: the
layout Pose2Sim's, but the translation is in the unit of the board's square length that calibrated it
(millimetres in anipose's examples), which the file does not record: the reader and the writer are told it.

Qualisys (QTM's calibration export, an XML file; read here as Pose2Sim's own converter reads it, so that the
two agree on the shipped demo): per ``<camera serial=...>``, ``<transform>`` is the camera's orientation
(r11..r33, rows) and position (x, y, z in mm) in the world; the camera frame is OpenCV's turned 180° about x,
so R = diag(1, -1, -1) R_qca and t = -R c / 1000. ``<intrinsic>`` is in sensor sub-pixels, 64 to a pixel:
focal lengths, principal point (less the video window's left and top) and the distortion coefficients
(k1, k2, p1, p2) are divided by 64. The image is the ``<fov_video>`` window. A view rotated in QTM
(``viewrotation`` not 0) is refused: its image axes would have to be turned too."""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import cv2
import numpy as np

from kinefuse.camera_calibration import CameraCalibration, read_calibration, write_calibration

_SUBPIXELS = 64.0  # QTM's sensor units per image pixel
_TURN = np.diag([1.0, -1.0, -1.0])  # QTM's camera frame to OpenCV's: 180° about x
_ROTATION = [f"r{i}{j}" for i in (1, 2, 3) for j in (1, 2, 3)]
UNITS_M = {"m": 1.0, "cm": 0.01, "mm": 0.001}  # an anipose file's translation unit, in metres


def read_anipose(path: str | Path, unit: str) -> list[CameraCalibration]:
    """The cameras of an anipose calibration whose translations are in ``unit`` (a key of ``UNITS_M``),
    with the translations in metres."""
    scale = UNITS_M[unit]
    return [dataclasses.replace(cam, translation=cam.translation * scale) for cam in read_calibration(path)]


def write_anipose(path: str | Path, cameras: list[CameraCalibration], unit: str) -> None:
    """``cameras`` as anipose reads them: tables ``cam_0``..., five distortions (k3 = 0 added) unless
    fisheye, translations in ``unit``."""
    scale = UNITS_M[unit]
    written = [dataclasses.replace(cam, translation=cam.translation / scale,
                                   distortions=_five(cam) if not cam.fisheye else cam.distortions)
               for cam in cameras]  # fmt: skip
    write_calibration(path, written, keys=[f"cam_{index}" for index in range(len(cameras))])


def _five(cam: CameraCalibration) -> np.ndarray:
    return np.concatenate([cam.distortions, np.zeros(5 - len(cam.distortions))])


def read_qca(path: str | Path) -> list[CameraCalibration]:
    """The cameras of a QTM ``.qca.txt`` file, in file order, named by their serial; ValueError naming the
    file, the camera and the attribute when something is missing or not a number."""
    path = Path(path)
    try:
        root = ElementTree.parse(path).getroot()
    except ElementTree.ParseError as exc:
        raise ValueError(f"{path}: not a QTM calibration (XML): {exc}") from None
    cameras = root.findall("./cameras/camera")
    if not cameras:
        raise ValueError(f"{path}: no <cameras><camera> elements: not a QTM calibration export")
    return [_camera(path, element, index) for index, element in enumerate(cameras, start=1)]


def _camera(path: Path, element: ElementTree.Element, index: int) -> CameraCalibration:
    name = element.get("serial") or f"camera {index}"
    where = f"{path}: camera {name!r}"
    if _number(element, "viewrotation", where, default=0.0) != 0.0:
        raise ValueError(f"{where}: viewrotation {element.get('viewrotation')} is not supported (only 0)")
    video, transform, intrinsic = (
        _child(element, tag, where) for tag in ("fov_video", "transform", "intrinsic")
    )
    left, top = _number(video, "left", where), _number(video, "top", where)
    size = (_number(video, "right", where) - left + 1, _number(video, "bottom", where) - top + 1)
    value = {key: _number(intrinsic, key, where) / _SUBPIXELS for key in (
        "focalLengthU", "focalLengthV", "centerPointU", "centerPointV", "radialDistortion1",
        "radialDistortion2", "tangentalDistortion1", "tangentalDistortion2")}  # fmt: skip
    matrix = [[value["focalLengthU"], 0.0, value["centerPointU"] - left],
              [0.0, value["focalLengthV"], value["centerPointV"] - top], [0.0, 0.0, 1.0]]  # fmt: skip
    rotation = _TURN @ np.array([_number(transform, key, where) for key in _ROTATION]).reshape(3, 3)
    centre = np.array([_number(transform, key, where) for key in ("x", "y", "z")]) / 1000.0
    distortions = [value[key] for key in ("radialDistortion1", "radialDistortion2", "tangentalDistortion1",
                                          "tangentalDistortion2")]  # fmt: skip
    try:
        return CameraCalibration(name, size, np.array(matrix), np.array(distortions),
                                 cv2.Rodrigues(rotation)[0].ravel(), -rotation @ centre)  # fmt: skip
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def _child(element: ElementTree.Element, tag: str, where: str) -> ElementTree.Element:
    child = element.find(tag)
    if child is None:
        raise ValueError(f"{where}: no <{tag}> element")
    return child


def _number(element: ElementTree.Element, key: str, where: str, default: float | None = None) -> float:
    text = element.get(key)
    if text is None:
        if default is not None:
            return default
        raise ValueError(f"{where}: <{element.tag}> has no {key!r} attribute")
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{where}: <{element.tag}> {key}={text!r} is not a number") from None
