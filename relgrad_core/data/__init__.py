"""Data sets for density estimation: ``load_dataset(name, ...)`` returns a :class:`Dataset`.

Generated: ``digits`` (ships with scikit-learn), the toy 2-D sets, ``teacher``, ``noise``.
From local files (``root`` / ``$RELGRAD_DATA`` / ``~/.relgrad/data``): the MAF-preprocessed
``power``, ``gas``, ``hepmass``, ``miniboone``, ``bsds300`` and ``mnist``.
"""

from relgrad_core.data.dataset import Dataset
from relgrad_core.data.registry import DATASETS, FILE_DATASETS, dataset_options, load_dataset
from relgrad_core.data.transforms import (
    bits_per_dim,
    inverse_logit_transform,
    logit_log_det,
    logit_to_unit_log_prob,
    logit_transform,
    unit_to_levels_log_prob,
)

__all__ = [
    "DATASETS",
    "FILE_DATASETS",
    "Dataset",
    "bits_per_dim",
    "dataset_options",
    "inverse_logit_transform",
    "load_dataset",
    "logit_log_det",
    "logit_to_unit_log_prob",
    "logit_transform",
    "unit_to_levels_log_prob",
]
