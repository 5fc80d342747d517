"""Initial and final contacts of both feet from one strap on the lower back (sacrum or L5, the common clinical
set-up): the batch detector the ``gait`` processor runs over a window of samples.

No mounting is needed. Up is the mean specific force over the window. The step time is where the vertical
acceleration's autocorrelation peaks (Moe-Nilssen & Helbostad 2004, J Biomech 37(1):121-126: the first
peak is the step's, the second the stride's); a peak under ``MIN_REGULARITY`` is no walking, and a window
whose vertical specific force falls near zero once a step has flight phases: running, which this detector
is not for (its vertical acceleration peaks in mid stance, not at contact).

- Initial contacts: McCamley et al. 2012 (Gait & Posture 36(2):316-318) integrate the vertical acceleration
  and differentiate it with a Gaussian wavelet; the result is the vertical acceleration smoothed by a
  Gaussian, computed here in one step, with the Gaussian's derivative tuned to the step frequency
  (sigma = step time / 2 pi: the best wavelet scale follows the step frequency, Caramia, De Marchis & Schmid
  2019, Sensors 19(8):1869). The pelvis is lowest around each contact and pushed up hardest as the new
  leg takes the load (Orendurff et al. 2004, J Rehabil Res Dev 41:829): contacts at its peaks.
- Final contacts: McCamley's second differentiation: the steepest fall of the smoothed acceleration after
  each peak, as the trailing foot leaves the floor. That is the other foot's final contact.
- Sides: in loading response the pelvis drops on the side of the leg leaving the floor (the normative
  pelvic obliquity of Kadaba et al. 1990, J Orthop Res 8:383): just after a left contact the pelvis rolls
  left side up. The roll is about the forward axis, the horizontal axis along which the acceleration swings
  most; forward is the way whose acceleration peaks just before the vertical one (the forward acceleration
  peaks at heel contact: Zijlstra & Hof 2003, Gait & Posture 18(2):1-10), not half a step away.

Contacts are given only inside walking: ``MIN_BOUT`` peaks in a row, each a plausible step after the last.
Times are fractional sample indices (a parabola through a peak's or trough's three samples).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.signal import correlate, correlation_lags

from kinefuse_plugins.metrics.strap_contacts import linked_runs, refine_peak

MIN_STEP_S, MAX_STEP_S = 0.3, 1.25  # a step's time in walking
MIN_REGULARITY = 0.4  # the vertical acceleration's autocorrelation at one step, below which it is no walking
FLIGHT_G = 0.25  # specific force along up below this fraction of gravity: the body is in the air
MIN_FLIGHTS = 0.25  # ... once in at least this many of the window's steps: running
MIN_PEAK = 0.25  # the smoothed vertical acceleration's peaks rise this far over its troughs, of its range
STEP_LINK = (0.6, 1.5)  # successive contacts are a step apart: this far from the window's step time
MIN_BOUT = 4  # contacts in a row needed before any is taken (a few bounces are no walking)
ROLL_S = 0.1  # the pelvis's roll is read over this long after each initial contact


@dataclasses.dataclass(frozen=True)
class LowerBackContacts:
    """Contacts found in a window as fractional sample indices into it, each with its foot; ``reason`` says
    why there are none."""

    initial: np.ndarray  # (k,)
    initial_side: tuple[str, ...]
    final: np.ndarray  # (m,)
    final_side: tuple[str, ...]
    step_s: float = float("nan")
    reason: str = ""


def detect_lower_back_contacts(acc: np.ndarray, gyr: np.ndarray, rate_hz: float) -> LowerBackContacts:
    """Both feet's contacts in the window ``acc`` (n, 3) m/s², ``gyr`` (n, 3) rad/s, uniformly sampled at
    ``rate_hz``, from a strap on the lower back."""
    up = acc.mean(axis=0)
    gravity = float(np.linalg.norm(up))
    up /= gravity
    vertical = acc @ up - gravity
    step_s, reason = _step_time(vertical, rate_hz, gravity)
    if reason:
        return _none(reason)
    smooth = gaussian_filter1d(vertical, step_s * rate_hz / (2 * np.pi))
    peaks = _bouts(_peaks(smooth), step_s * rate_hz)
    if len(peaks) == 0:
        return _none(f"no {MIN_BOUT} contacts in a row a step apart: not walking", step_s)
    forward = _forward(acc, up, smooth, step_s, rate_hz)
    roll = gyr @ forward
    after = max(int(round(ROLL_S * rate_hz)), 1)
    kept = [p for p in peaks if p + after < len(roll)]
    sides = tuple("left" if roll[p : p + after + 1].mean() > 0 else "right" for p in kept)
    slope = np.gradient(smooth)
    initial, final, final_side = [], [], []
    for k, p in enumerate(kept):
        initial.append(refine_peak(smooth, p))
        end = kept[k + 1] if k + 1 < len(kept) else min(p + int(round(step_s * rate_hz)), len(smooth) - 1)
        if end - p >= 3:
            fall = p + int(np.argmin(slope[p:end]))
            final.append(refine_peak(-slope, fall))
            final_side.append("right" if sides[k] == "left" else "left")
    return LowerBackContacts(np.array(initial), sides, np.array(final), tuple(final_side), step_s)


def _none(reason: str, step_s: float = float("nan")) -> LowerBackContacts:
    return LowerBackContacts(np.empty(0), (), np.empty(0), (), step_s, reason)


def _step_time(vertical: np.ndarray, rate_hz: float, gravity: float) -> tuple[float, str]:
    """The step time (s) from the vertical acceleration's autocorrelation; or why there is none."""
    lo, hi = int(MIN_STEP_S * rate_hz), int(MAX_STEP_S * rate_hz)
    centred = vertical - vertical.mean()
    if len(centred) < 3 * hi or not centred.any():
        return float("nan"), f"fewer than {3 * MAX_STEP_S:.1f} s of samples"
    autocorrelation = correlate(centred, centred, method="fft")[len(centred) - 1 : len(centred) + hi]
    autocorrelation /= autocorrelation[0]
    lag = _highest_peak(autocorrelation, lo, hi)
    if lag is None:
        return float("nan"), f"no regular steps: no rhythm {MIN_STEP_S}-{MAX_STEP_S} s long"
    half = _highest_peak(autocorrelation, int(0.4 * lag), int(0.6 * lag))
    if half is not None and autocorrelation[half] >= MIN_REGULARITY:
        lag = half  # the highest peak was the stride (the steps differ): the step is the first
    if autocorrelation[lag] < MIN_REGULARITY:
        return float("nan"), (
            f"no regular steps: the vertical acceleration's autocorrelation peaks at {autocorrelation[lag]:.2f} "
            f"(walking: {MIN_REGULARITY} or more)"
        )
    step_s = float(refine_peak(autocorrelation, lag) / rate_hz)
    airborne = vertical + gravity < FLIGHT_G * gravity
    flights = np.count_nonzero(np.diff(airborne.astype(np.int8)) == 1)
    if flights >= MIN_FLIGHTS * len(vertical) / (step_s * rate_hz):
        return float(
            "nan"
        ), f"flight phases in {flights} steps: running (contacts from the lower back are for walking)"
    return step_s, ""


def _highest_peak(y: np.ndarray, lo: int, hi: int) -> int | None:
    """The highest local maximum of ``y`` at an index in [lo, hi], if any."""
    inside = [k for k in range(max(lo, 1), min(hi, len(y) - 2) + 1) if y[k - 1] < y[k] >= y[k + 1]]
    return max(inside, key=lambda k: y[k]) if inside else None


def _peaks(smooth: np.ndarray) -> np.ndarray:
    """Local maxima of ``smooth`` rising at least ``MIN_PEAK`` of its range over the troughs beside them."""
    inside = np.flatnonzero((smooth[1:-1] > smooth[:-2]) & (smooth[1:-1] >= smooth[2:])) + 1
    floor = MIN_PEAK * float(np.ptp(smooth))
    keep = []
    for k, p in enumerate(inside):
        before = smooth[inside[k - 1] : p + 1].min() if k else smooth[: p + 1].min()
        after = smooth[p : inside[k + 1] + 1].min() if k + 1 < len(inside) else smooth[p:].min()
        if smooth[p] - max(before, after) >= floor:
            keep.append(p)
    return np.array(keep, dtype=np.int64)


def _bouts(peaks: np.ndarray, step: float) -> np.ndarray:
    """The peaks in runs of at least ``MIN_BOUT`` whose successive ones are a step apart."""
    if not len(peaks):
        return peaks
    gaps = np.diff(peaks)
    return peaks[linked_runs((gaps >= STEP_LINK[0] * step) & (gaps <= STEP_LINK[1] * step), MIN_BOUT)]


def _forward(
    acc: np.ndarray, up: np.ndarray, smooth: np.ndarray, step_s: float, rate_hz: float
) -> np.ndarray:
    """The forward unit vector in the strap's frame: the horizontal axis of the largest acceleration swing,
    pointing the way whose acceleration peaks less than a quarter step before or after the vertical one."""
    horizontal = acc - np.outer(acc @ up, up)
    horizontal = gaussian_filter1d(
        horizontal - horizontal.mean(axis=0), step_s * rate_hz / (4 * np.pi), axis=0
    )
    _, vectors = np.linalg.eigh(np.cov(horizontal.T))
    forward = vectors[:, -1] - (vectors[:, -1] @ up) * up
    forward /= np.linalg.norm(forward)
    along, vertical = horizontal @ forward, smooth - smooth.mean()
    # lag > 0: the vertical acceleration comes after the forward one; lags within half a step
    correlation = correlate(vertical, along, method="direct")
    lags = correlation_lags(len(vertical), len(along))
    near = np.abs(lags) <= int(step_s * rate_hz / 2)
    lead = lags[near][int(np.argmax(correlation[near]))]
    return forward if abs(lead) <= step_s * rate_hz / 4 else -forward
