"""Small helpers every model section shares: config checks and device choice."""

from __future__ import annotations

import torch


def check(cond: bool, key: str, msg: str, value) -> None:
    """Refuse a config value by name. ValueError keeps models free of engine imports; the engine words it."""
    if not cond:
        raise ValueError(f"config: {key} {msg} (got {value!r})")


def pick_device(name: str, key: str = "device") -> torch.device:
    """"auto" is CUDA when present, else the CPU; asking for CUDA without it is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"{key} is {name!r} but torch sees no CUDA device here; use \"auto\" or \"cpu\"")
    return torch.device(name)
