"""The container every loader returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch


@dataclass
class Dataset:
    """Train/validation/test splits of one density-estimation problem.

    All three splits are float tensors of shape ``(n, dim)`` on the CPU; :meth:`to` moves them.

    Attributes:
        name: registry name (``"digits"``, ``"teacher"``, ...).
        train, val, test: the splits.
        transform: human-readable description of the preprocessing, i.e. of the space the
            log-density is reported in (``"dequantise, /17, logit(λ=1e-6)"``).
        true_log_prob: exact log-density of the data-generating process in that space, when known
            (``teacher``, some toy sets); maps ``(n, dim)`` to ``(n,)``.
        true_test_ll: mean of ``true_log_prob`` over the test split, when known.
        info: any further metadata (source file, seeds, preprocessing constants, ...).
    """

    name: str
    train: torch.Tensor
    val: torch.Tensor
    test: torch.Tensor
    transform: str = "none"
    true_log_prob: Callable[[torch.Tensor], torch.Tensor] | None = None
    true_test_ll: float | None = None
    info: dict[str, object] = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return int(self.train.shape[1])

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Dataset:
        """Return a copy with every split moved to ``device``/``dtype``."""

        def move(t: torch.Tensor) -> torch.Tensor:
            return t.to(device=device, dtype=dtype)

        return Dataset(
            name=self.name,
            train=move(self.train),
            val=move(self.val),
            test=move(self.test),
            transform=self.transform,
            true_log_prob=self.true_log_prob,
            true_test_ll=self.true_test_ll,
            info=dict(self.info),
        )

    def __repr__(self) -> str:
        sizes = f"train={len(self.train)}, val={len(self.val)}, test={len(self.test)}"
        return f"Dataset({self.name!r}, dim={self.dim}, {sizes}, transform={self.transform!r})"
