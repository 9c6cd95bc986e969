"""What a measurement records about where it ran: CPU model, load, software versions, git commit."""

from __future__ import annotations

import datetime as _dt
import math
import os
import platform
import subprocess
import sys
from pathlib import Path

import torch

#: The repository this package lives in (the default root for :func:`git_commit`).
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (Linux), else platform's best guess, else "unknown"."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def load_avg_1m() -> float:
    """The 1-minute load average (runnable processes), NaN where the OS does not provide one."""
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return math.nan


def git_commit(root: str | Path | None = None, *, short: bool = False) -> str:
    """The commit checked out at ``root`` (default: this project), ``-dirty`` if tracked files changed.

    ``RELGRAD_GIT_COMMIT`` wins (cluster nodes may have no .git); "unknown" when git cannot tell.
    """
    if os.environ.get("RELGRAD_GIT_COMMIT"):
        return os.environ["RELGRAD_GIT_COMMIT"]
    cwd = Path(root) if root is not None else PROJECT_ROOT

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)

    try:
        out = git("rev-parse", "--short" if short else "--verify", "HEAD")
        commit = out.stdout.strip()
        if out.returncode != 0 or not commit:
            return "unknown"
        dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit


def machine_info(device: str | torch.device = "cpu") -> dict[str, object]:
    """CPU model, core count, torch threads, load, torch/CUDA versions, GPU name, date (UTC), command,
    commit: what every benchmark writes beside its numbers."""
    device = torch.device(device)
    info: dict[str, object] = {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join(["python -m", _module_name(), *sys.argv[1:]]),
        "git_commit": git_commit(short=True),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_avg_1m": load_avg_1m(),
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "device": str(device),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda_version"] = torch.version.cuda
    return info


def _module_name() -> str:
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    return spec.name if spec is not None else (sys.argv[0] or "python")
