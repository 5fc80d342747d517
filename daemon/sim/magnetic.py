"""The magnetic field a strap's magnetometer sits in: the Earth's field plus nearby ferrous objects.

World frame: x forward, y left, z up (the body model's). With ``heading_deg = 0`` it is taken to be ENU,
so x = east, y = north, z = up; ``heading_deg`` turns the world frame counter-clockwise (seen from above)
about z relative to ENU, e.g. 90 puts world x on north and world y on west.

Every field here is in µT.
"""

from __future__ import annotations

import dataclasses

import numpy as np

# μ0/4π = 1e-7 T·m/A = 0.1 µT·m/A, so a moment in A·m² at a distance in m gives µT directly.
MU0_OVER_4PI_UT = 0.1

# WMM2025 (NOAA NCEI / BGS, model epoch 2025.0) at Munich, 48.137° N 11.575° E, 520 m, on 2025-07-01:
# X (north) 21014 nT, Y (east) 1546 nT, Z (down) 43970 nT; D = +4.21°, I = 64.40°, F = 48758 nT.
# Evaluated with NOAA's reference implementation (PyPI `wmm-calculator` 1.4.4), ENU order here.
MUNICH_WMM2025_ENU_UT = (1.546, 21.014, -43.970)


def _as_points(positions) -> np.ndarray:
    return np.asarray(positions, dtype=np.float64).reshape(-1, 3)


@dataclasses.dataclass(frozen=True)
class FerrousDisturbance:
    """A magnetised object, modelled as a uniformly magnetised sphere.

    Outside the sphere its field is exactly that of a point dipole (Jackson, Classical Electrodynamics,
    3rd ed., eq. 5.56): B = μ0/4π · (3(m·r̂)r̂ − m)/|r|³. Inside it is uniform, B = μ0/4π · 2m/a³
    (Jackson §5.10), which equals the outside field at the poles: so the field stays finite and continuous
    where a bare dipole would diverge, and a sensor touching the object reads a large, bounded field.
    """

    position: tuple[float, float, float]  # world frame, m
    moment_Am2: tuple[float, float, float]  # world frame, A·m²
    radius_m: float = 0.05

    def __post_init__(self) -> None:
        if self.radius_m <= 0:
            raise ValueError(f"radius_m must be positive, got {self.radius_m}")

    def field_at(self, positions) -> np.ndarray:
        """(n, 3) µT at world positions (n, 3) m."""
        r_vec = _as_points(positions) - np.asarray(self.position, dtype=np.float64)
        m = np.asarray(self.moment_Am2, dtype=np.float64)
        r = np.linalg.norm(r_vec, axis=1, keepdims=True)
        outside = r > self.radius_m
        r_hat = r_vec / np.where(outside, r, 1.0)
        r_safe = np.maximum(r, self.radius_m)
        dipole = MU0_OVER_4PI_UT * (3.0 * (r_hat @ m)[:, None] * r_hat - m) / r_safe**3
        interior = MU0_OVER_4PI_UT * 2.0 * m / self.radius_m**3
        return np.where(outside, dipole, interior)


@dataclasses.dataclass(frozen=True)
class MagneticEnvironment:
    """The Earth's field (uniform over a capture volume) plus any ferrous disturbances."""

    field_enu_uT: tuple[float, float, float] = MUNICH_WMM2025_ENU_UT
    disturbances: tuple[FerrousDisturbance, ...] = ()
    heading_deg: float = 0.0

    def earth_field_world(self) -> np.ndarray:
        """(3,) µT: the Earth's field in the world frame (ENU turned by ``heading_deg`` about z)."""
        h = np.radians(self.heading_deg)
        c, s = np.cos(h), np.sin(h)
        world_axes_in_enu = np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])  # one axis a row
        return world_axes_in_enu @ np.asarray(self.field_enu_uT, dtype=np.float64)

    def field_at(self, positions) -> np.ndarray:
        """(n, 3) µT in the world frame at world positions (n, 3) m."""
        points = _as_points(positions)
        field = np.broadcast_to(self.earth_field_world(), points.shape).copy()
        for disturbance in self.disturbances:
            field += disturbance.field_at(points)
        return field

    def inclination_deg(self) -> float:
        """Dip of the Earth's field below the horizontal, positive downwards (northern hemisphere)."""
        east, north, up = self.field_enu_uT
        return float(np.degrees(np.arctan2(-up, np.hypot(east, north))))

    def declination_deg(self) -> float:
        """Angle from geographic north to the field's horizontal part, positive towards east."""
        east, north, _ = self.field_enu_uT
        return float(np.degrees(np.arctan2(east, north)))
