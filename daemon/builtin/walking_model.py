"""A plausible walking athlete, analytic in time: sagittal segment angles, what IMU straps on those
segments measure, and COCO-17 keypoints seen by a side-view camera.

Deliberately simple (sinusoidal joint angles at a set cadence, roughly the shape of normative hip and
knee curves in Winter, "Biomechanics and Motor Control of Human Movement", 4th ed., ch. 1); the
synthetic-athlete issue replaces it with a full body model. Angular rates are exact derivatives, so
the IMU signals are smooth, not finite differences.
"""

from __future__ import annotations

import dataclasses

import numpy as np

GRAVITY = 9.81  # m/s^2
EARTH_FIELD_UT = np.array([18.0, -42.0, 4.0])  # a mid-latitude field in the strap's rest frame
STRAP_SEGMENTS = ("pelvis", "left_shank", "right_shank", "trunk", "left_thigh", "right_thigh")


@dataclasses.dataclass(frozen=True)
class Walker:
    cadence_spm: float = 110.0  # steps per minute
    height_m: float = 1.75

    @property
    def stride_hz(self) -> float:
        return self.cadence_spm / 120.0  # two steps per stride

    def _phase(self, t: np.ndarray, side: str) -> np.ndarray:
        return 2 * np.pi * self.stride_hz * t + (np.pi if side == "right" else 0.0)

    def segment_angle(self, segment: str, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sagittal angle of a segment from vertical (rad, forward positive) and its exact rate (rad/s)."""
        w = 2 * np.pi * self.stride_hz
        if segment in ("pelvis", "trunk"):
            amp, bias, phase = np.radians(2.0), np.radians(4.0 if segment == "trunk" else 0.0), 2 * w * t
            return bias + amp * np.sin(phase), 2 * w * amp * np.cos(phase)
        side, part = segment.split("_")
        phase = self._phase(t, side)
        hip, hip_rate = np.radians(20.0) * np.sin(phase), np.radians(20.0) * w * np.cos(phase)
        if part == "thigh":
            return hip, hip_rate
        # knee flexion 5..65 degrees, peaking in swing, shortly after the hip passes vertical
        knee = np.radians(5.0) + np.radians(30.0) * (1 - np.cos(phase - 0.5))
        knee_rate = np.radians(30.0) * w * np.sin(phase - 0.5)
        return hip - knee, hip_rate - knee_rate

    def imu(self, segment: str, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Specific force (m/s^2), angular rate (rad/s) and magnetic field (uT) of a strap, sensor z mediolateral."""
        angle, rate = self.segment_angle(segment, t)
        c, s = np.cos(angle), np.sin(angle)
        bounce = 2 * (2 * np.pi * self.stride_hz) ** 2 * 0.02 * np.sin(2 * 2 * np.pi * self.stride_hz * t)
        up = GRAVITY + bounce  # specific force of the body's vertical motion
        acc = np.stack([up * s, up * c, np.zeros_like(t)], axis=1)
        gyr = np.stack([np.zeros_like(t), np.zeros_like(t), rate], axis=1)
        mx, my, mz = EARTH_FIELD_UT
        mag = np.stack([mx * c + my * s, -mx * s + my * c, np.full_like(t, mz)], axis=1)
        return acc, gyr, mag

    def keypoints(self, t: np.ndarray, width: int, height: int) -> np.ndarray:
        """(n, 17, 2) pixel positions of a person walking on the spot, seen from their left side."""
        scale = 0.55 * height / self.height_m  # pixels per metre
        n = len(t)
        hip = np.stack(
            [np.full(n, width / 2), height * 0.52 + 0.02 * scale * np.sin(4 * np.pi * self.stride_hz * t)], 1
        )
        trunk_angle, _ = self.segment_angle("trunk", t)
        neck = hip + 0.30 * self.height_m * scale * np.stack([np.sin(trunk_angle), -np.cos(trunk_angle)], 1)
        head = neck + np.stack([np.full(n, 0.03), np.full(n, -0.12)], 1) * self.height_m * scale
        points = np.zeros((n, 17, 2))
        points[:, 0] = head + [0.06 * scale, 0.02 * scale]
        points[:, 1:3] = (head + [0.05 * scale, 0.0])[:, None]
        points[:, 3:5] = head[:, None]
        points[:, 5:7] = neck[:, None]
        points[:, 11:13] = hip[:, None]
        for index, side in ((0, "left"), (1, "right")):
            thigh, _ = self.segment_angle(f"{side}_thigh", t)
            shank, _ = self.segment_angle(f"{side}_shank", t)
            knee = hip + 0.245 * self.height_m * scale * np.stack([np.sin(thigh), np.cos(thigh)], 1)
            ankle = knee + 0.246 * self.height_m * scale * np.stack([np.sin(shank), np.cos(shank)], 1)
            arm = -0.6 * thigh  # arms swing against the same-side leg
            elbow = neck + 0.186 * self.height_m * scale * np.stack([np.sin(arm), np.cos(arm)], 1)
            wrist = elbow + 0.146 * self.height_m * scale * np.stack(
                [np.sin(arm + 0.3), np.cos(arm + 0.3)], 1
            )
            points[:, 13 + index], points[:, 15 + index] = knee, ankle
            points[:, 7 + index], points[:, 9 + index] = elbow, wrist
        return points
