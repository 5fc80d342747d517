"""Initial and final contacts of one foot from a strap on its foot or shank: the batch detector the ``gait``
processor runs over a window of samples.

The foot and the shank turn mostly about the medio-lateral axis when walking or running, so that axis is
the principal axis of the angular rate over the window (its largest eigenvector; no mounting needed). Along
it the rate swings between two signs once a stride; the **swing** is the lobe of one sign from just before
the foot leaves the floor to the heel's landing (Jasiewicz et al. 2006, Gait & Posture 24(4):502-509, foot
and shank angular velocity events). Which sign is the swing is told by what follows a lobe: the swing ends
in the heel's impact on the floor, a jump in the specific force, the other lobes do not (median over the
window's lobes, clear by a factor ``IMPACT_RATIO``).

- Foot: initial contact where the swing's rotation stops, the zero crossing that ends the swing lobe (the
  heel on the floor stops the foot's toe-up turn); final contact where the ground lets the foot go, the
  largest jerk (change of specific force) between the push-off's peak rate (less ``RELEASE_BEFORE_S``) and
  the swing lobe's start. The push-off peak alone is about a sample early on the gaitmap recording, the
  swing's zero crossing 15-20 ms late; the jerk was chosen there among those three (docs/metrics.md).
- Shank: final contact at the zero crossing that starts the swing lobe (the shank starts its forward swing
  as the toe leaves: Aminian et al. 2002, J Biomech 35(5):689-699, place events at the rate's extrema
  around the swing; those are 30-140 ms off on the synthetic athlete, the crossing is not); initial contact
  at the impact, the largest jerk within ``IMPACT_S`` after the swing lobe ends (the shank's rate crosses
  zero before the heel lands, as the knee extends in terminal swing).

Contacts are given only inside gait: at least MIN_BOUT swings in a row, each a plausible stride after the
last (a drop landing's single swing and landing are not gait). Times are fractional sample indices (linear
interpolation at a zero crossing, a parabola through a peak's three samples): finer than a sample.
"""

from __future__ import annotations

import dataclasses

import numpy as np

MIN_SWING_RATE = np.deg2rad(100.0)  # rad/s: a lobe whose peak rate is lower is no swing (slow gait's is ~250)
MIN_SWING_S, MAX_SWING_S = 0.1, 1.0  # a swing lobe's duration
IMPACT_S = 0.08  # the impact is looked for this long after a swing ends
IMPACT_RATIO = 1.5  # the swing's impacts must be this much larger than the other lobes'
PUSH_OFF_S = 0.3  # the push-off peak is looked for this long before a swing starts
RELEASE_BEFORE_S = 0.03  # the foot's release is looked for from this long before the push-off peak
MIN_STRIDE_S, MAX_STRIDE_S = 0.4, 2.5  # swings this far apart are successive strides of one gait bout
MIN_BOUT = 3  # swings in a row needed before any is taken as a stride (a drop landing's are not gait)
PLACES = ("foot", "shank")


@dataclasses.dataclass(frozen=True)
class Contacts:
    """Contacts found in a window, as fractional sample indices into it; ``reason`` says why there are none."""

    initial: np.ndarray  # (k,)
    final: np.ndarray  # (k,): the same swing's final contact (before it)
    reason: str = ""


def detect_contacts(acc: np.ndarray, gyr: np.ndarray, rate_hz: float, place: str) -> Contacts:
    """Each complete swing's final and initial contact in the window ``acc`` (n, 3) m/s², ``gyr`` (n, 3)
    rad/s, uniformly sampled at ``rate_hz``, from a strap on a ``place`` ("foot" or "shank")."""
    if place not in PLACES:
        raise ValueError(f"place must be one of {PLACES}, got {place!r}")
    rate = gyr @ _principal_axis(gyr)
    jerk = _jerk(acc)
    swings, reason = _swings(rate, jerk, rate_hz)
    swings = [swings[i] for i in in_bouts(np.array([a for a, _ in swings]) / rate_hz)] if swings else swings
    if not swings and not reason:
        reason = (
            f"no {MIN_BOUT} swings in a row {MIN_STRIDE_S}-{MAX_STRIDE_S} s apart: not walking or running"
        )
    if not swings:
        return Contacts(np.empty(0), np.empty(0), reason)
    find = _foot_contacts if place == "foot" else _shank_contacts
    pairs = [find(rate, jerk, start, end, rate_hz) for start, end in swings]
    pairs = [(tc, ic) for tc, ic in pairs if np.isfinite(tc) and np.isfinite(ic)]
    if not pairs:
        return Contacts(np.empty(0), np.empty(0), "no swing whose contacts lie inside the window")
    final, initial = (np.array(x, dtype=np.float64) for x in zip(*pairs, strict=True))
    return Contacts(initial, final)


def _principal_axis(gyr: np.ndarray) -> np.ndarray:
    _, vectors = np.linalg.eigh(np.cov(gyr.T))
    return vectors[:, -1]


def _jerk(acc: np.ndarray) -> np.ndarray:
    """|d(specific force)| per sample (central differences)."""
    return np.linalg.norm(np.gradient(acc, axis=0), axis=1)


def _lobes(rate: np.ndarray, sign: int, rate_hz: float) -> list[tuple[int, int]]:
    """(a, b): the rate crosses zero between samples a and a+1 and between b and b+1, of ``sign`` in between,
    with a swing's peak and duration."""
    positive = rate > 0
    crossings = np.flatnonzero(positive[1:] != positive[:-1])
    lobes = []
    for a, b in zip(crossings[:-1], crossings[1:], strict=True):
        inside = sign * rate[a + 1 : b + 1]
        duration = (b - a) / rate_hz
        if inside[0] > 0 and inside.max() > MIN_SWING_RATE and MIN_SWING_S <= duration <= MAX_SWING_S:
            lobes.append((int(a), int(b)))
    return lobes


def _swings(rate: np.ndarray, jerk: np.ndarray, rate_hz: float) -> tuple[list[tuple[int, int]], str]:
    """The swing lobes: those of the sign whose lobes end in an impact; or none, and why."""
    after = max(int(round(IMPACT_S * rate_hz)), 1)
    impacts = {}
    for sign in (1, -1):
        lobes = [(a, b) for a, b in _lobes(rate, sign, rate_hz) if b + 1 + after <= len(rate)]
        if len(lobes) >= 2:
            impacts[sign] = (float(np.median([jerk[b + 1 : b + 1 + after].max() for _, b in lobes])), lobes)
    if not impacts:
        return (
            [],
            f"fewer than two swings (a lobe of angular rate peaking over {np.rad2deg(MIN_SWING_RATE):.0f} deg/s)",
        )
    ranked = sorted(impacts.values(), key=lambda x: x[0], reverse=True)
    if len(ranked) == 2 and ranked[0][0] < IMPACT_RATIO * ranked[1][0]:
        return [], "the swing cannot be told from the push-off: neither ends in a clear impact"
    return ranked[0][1], ""


def in_bouts(times_s: np.ndarray) -> list[int]:
    """The indices of the events at ``times_s`` (one per stride of a foot, in time order) in runs of at least
    MIN_BOUT whose successive times are a stride apart."""
    if not len(times_s):
        return []
    stride = np.diff(times_s)
    return linked_runs((stride >= MIN_STRIDE_S) & (stride <= MAX_STRIDE_S), MIN_BOUT)


def linked_runs(linked: np.ndarray, shortest: int) -> list[int]:
    """The indices of events in runs of at least ``shortest`` in a row, ``linked[i]`` saying whether event
    i + 1 follows event i as the rhythm wants (len(linked) = events - 1)."""
    keep, run = [], [0]
    for i, link in enumerate(linked, start=1):
        if not link:
            keep += run if len(run) >= shortest else []
            run = []
        run.append(i)
    return keep + (run if len(run) >= shortest else [])


def _foot_contacts(rate, jerk, start: int, end: int, rate_hz: float) -> tuple[float, float]:
    stance = -np.sign(rate[start + 1]) * rate
    first = start - int(round(PUSH_OFF_S * rate_hz))
    if first < 1:
        return np.nan, np.nan
    push_off = first + int(np.argmax(stance[first : start + 1]))
    release = push_off - int(round(RELEASE_BEFORE_S * rate_hz))
    if release < 1:
        return np.nan, np.nan
    final = refine_peak(jerk, release + int(np.argmax(jerk[release : start + 2])))
    return final, _zero_crossing(rate, end)


def _shank_contacts(rate, jerk, start: int, end: int, rate_hz: float) -> tuple[float, float]:
    last = end + 1 + max(int(round(IMPACT_S * rate_hz)), 1)
    if last > len(rate) - 1:
        return np.nan, np.nan
    impact = refine_peak(jerk, end + 1 + int(np.argmax(jerk[end + 1 : last])))
    return _zero_crossing(rate, start), impact


def _zero_crossing(y: np.ndarray, i: int) -> float:
    """Where y crosses zero between samples i and i+1, linearly interpolated."""
    return i + float(y[i] / (y[i] - y[i + 1]))


def refine_peak(y: np.ndarray, i: int) -> float:
    """The peak at sample i refined by the parabola through its three samples."""
    if i <= 0 or i >= len(y) - 1:
        return float(i)
    before, at, after = y[i - 1], y[i], y[i + 1]
    curvature = before - 2 * at + after
    return i + (float(0.5 * (before - after) / curvature) if curvature < 0 else 0.0)
