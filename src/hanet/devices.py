"""Which device a command runs on."""

from __future__ import annotations

import torch

from hanet.errors import HanetError


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when there is one), ``cpu``, ``cuda`` or ``cuda:N``.

    Raises:
        HanetError: a CUDA device asked for where there is none, or a name torch does not know.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise HanetError(f"--device {name!r}: not a device (cpu, cuda, cuda:N or auto)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise HanetError("--device cuda asked for, but no CUDA device is available")
    return dev


__all__ = ["resolve_device"]
