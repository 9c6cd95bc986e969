"""Device selection: ``"auto"`` means CUDA when present, else CPU."""

from __future__ import annotations

import torch


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """Turn ``"auto"``/``None``/a name/a device into a :class:`torch.device`.

    Raises:
        ValueError: the name is not a device torch knows, or CUDA was asked for but is absent.
    """
    if device is None or (isinstance(device, str) and device == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"unknown device {device!r}: use 'auto', 'cpu', 'cuda' or 'cuda:N'") from err
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available on this machine")
    return resolved


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels on ``device`` (a no-op on the CPU), so wall-clock readings are honest."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
