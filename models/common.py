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


def load_checkpoint(path, what: str, fix: str, device="cpu"):
    """torch.load as data only (weights_only=True: a pickle that would run code is refused, not run).

    Any failure is a one-line ValueError naming the file and how to make a good one.
    """
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # truncated, foreign, or a pickle asking to run code
        raise ValueError(f"{what} at {path} cannot be read as weights ({type(e).__name__}: {first_line(e)}); "
                         f"{fix}") from None


def checkpoint_fields(ck, fields: dict[str, type | tuple], what: str, path, fix: str) -> None:
    """The checkpoint is a dict with these keys, each of this type: a one-line ValueError otherwise."""
    if not isinstance(ck, dict):
        raise ValueError(f"{what} at {path} is a {type(ck).__name__}, not a checkpoint dict; {fix}")
    for key, kind in fields.items():
        if key not in ck:
            raise ValueError(f"{what} at {path} has no {key!r} entry; {fix}")
        if not isinstance(ck[key], kind) or (kind is int and isinstance(ck[key], bool)):
            want = "/".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
            raise ValueError(f"{what} at {path}: {key!r} is a {type(ck[key]).__name__}, expected {want}; {fix}")


def load_state(module: torch.nn.Module, state, what: str, path, fix: str) -> None:
    """Load a state dict after checking its keys and tensor shapes against the module's own.

    torch's own error lists every key over many lines; this says the first few differences in one.
    """
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{what} at {path}: the weights are not a table of tensors; {fix}")
    own = module.state_dict()
    problems = [f"missing {k}" for k in own if k not in state]
    problems += [f"unexpected {k}" for k in state if k not in own]
    problems += [f"{k} is {tuple(state[k].shape)}, expected {tuple(v.shape)}" for k, v in own.items()
                 if k in state and state[k].shape != v.shape]
    problems += [f"{k} holds {state[k].dtype}" for k, v in own.items()
                 if k in state and v.is_floating_point() and not state[k].is_floating_point()]
    if problems:
        more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        raise ValueError(f"{what} at {path} do not fit this model: {'; '.join(problems[:3])}{more}; {fix}")
    module.load_state_dict(state)


def first_line(e: BaseException, limit: int = 160) -> str:
    text = str(e).strip().splitlines()
    return text[0][:limit] if text else type(e).__name__
