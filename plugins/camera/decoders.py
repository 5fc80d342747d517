"""Output decoders: model outputs to keypoints (x, y, confidence) in model-input pixels, per person.

Each decoder is a pure function of the output arrays and the input size; the caller maps the result
back to image pixels with the preprocessing's Transform. Tests build outputs to a known answer.
"""

from __future__ import annotations

import numpy as np


def movenet_singlepose(outputs: list[np.ndarray], input_size: tuple[int, int]) -> np.ndarray:
    """MoveNet SinglePose: [1, 1, K, 3] of (y, x, score), normalised to the input. Returns (1, K, 3)."""
    raw = np.asarray(outputs[0], dtype=np.float64).reshape(-1, 3)
    width, height = input_size
    # normalised coordinates: 0 is the input's left/top edge, 1 its right/bottom edge
    x = raw[:, 1] * width - 0.5
    y = raw[:, 0] * height - 0.5
    return np.stack([x, y, raw[:, 2]], axis=1)[None]


def simcc(outputs: list[np.ndarray], input_size: tuple[int, int], split_ratio: float = 2.0) -> np.ndarray:
    """SimCC (RTMPose and the like; Li et al., ECCV 2022): per keypoint a 1-D classification over
    x bins and one over y bins, ``split_ratio`` bins per input pixel. outputs = [simcc_x (N, K, W*r),
    simcc_y (N, K, H*r)]. Position: the argmax bin / r; confidence: the smaller of the two peaks (as
    mmpose does). Returns (N, K, 3)."""
    simcc_x, simcc_y = (np.asarray(o, dtype=np.float64) for o in outputs[:2])
    if simcc_x.ndim == 2:
        simcc_x, simcc_y = simcc_x[None], simcc_y[None]
    x = np.argmax(simcc_x, axis=-1) / split_ratio
    y = np.argmax(simcc_y, axis=-1) / split_ratio
    score = np.minimum(simcc_x.max(axis=-1), simcc_y.max(axis=-1))
    return np.stack([x, y, score], axis=-1)


def yolo_pose(outputs: list[np.ndarray], input_size: tuple[int, int], score_threshold: float = 0.25,
              iou_threshold: float = 0.45, keypoints: int = 17) -> np.ndarray:  # fmt: skip
    """Bottom-up YOLO-pose style (Maji et al., CVPRW 2022; the Ultralytics export): one prediction per
    anchor, [1, 5 + 3K, A] or [1, A, 5 + 3K] rows of (cx, cy, w, h, score, then x, y, conf per keypoint).
    Keeps predictions above ``score_threshold``, greedy NMS on the boxes at ``iou_threshold``; returns
    (P, K, 3) people, best first."""
    raw = np.asarray(outputs[0], dtype=np.float64)[0]
    channels = 5 + 3 * keypoints
    if raw.shape[0] == channels and raw.shape[1] != channels:
        raw = raw.T  # channels first, as Ultralytics exports it: make it (anchors, 5 + 3K)
    if raw.shape[1] != channels:
        raise ValueError(f"yolo_pose output {raw.shape} has no axis of 5 + 3 x {keypoints} values")
    keep = raw[:, 4] >= score_threshold
    rows = raw[keep]
    boxes = np.column_stack([rows[:, 0] - rows[:, 2] / 2, rows[:, 1] - rows[:, 3] / 2,
                             rows[:, 0] + rows[:, 2] / 2, rows[:, 1] + rows[:, 3] / 2])  # fmt: skip
    chosen = nms(boxes, rows[:, 4], iou_threshold)
    return rows[chosen, 5:].reshape(len(chosen), -1, 3)


def rtmdet_persons(outputs: list[np.ndarray], input_size: tuple[int, int], score_threshold: float = 0.3,
                   person_label: int = 0) -> np.ndarray:  # fmt: skip
    """RTMDet exported with NMS inside (mmdeploy): dets [1, N, 5] (x1, y1, x2, y2, score in input
    pixels) and labels [1, N]. Returns the person boxes (P, 5) above ``score_threshold``, best first."""
    dets, labels = np.asarray(outputs[0], dtype=np.float64)[0], np.asarray(outputs[1])[0]
    chosen = dets[(labels == person_label) & (dets[:, 4] >= score_threshold)]
    return chosen[np.argsort(-chosen[:, 4], kind="stable")]


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices of the boxes greedy non-maximum suppression keeps, best first."""
    order = np.argsort(-scores, kind="stable")
    kept = []
    while len(order):
        best, rest = order[0], order[1:]
        kept.append(int(best))
        order = rest[box_iou(boxes[best], boxes[rest]) <= iou_threshold]
    return np.array(kept, dtype=int)


def box_iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Intersection over union of one (x1, y1, x2, y2) box with each of ``others`` (n, 4)."""
    width = np.clip(np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0]), 0, None)
    height = np.clip(np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1]), 0, None)
    inter = width * height
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-12)


DECODERS = {"movenet_singlepose": movenet_singlepose, "simcc": simcc, "yolo_pose": yolo_pose,
            "rtmdet_persons": rtmdet_persons}  # fmt: skip
