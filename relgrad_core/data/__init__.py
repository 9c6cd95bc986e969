"""Data sets for density estimation: ``load_dataset(name, ...)`` returns a :class:`Dataset`.

Generated: ``digits`` (ships with scikit-learn), the toy 2-D sets, ``teacher``, ``noise``.
From local files (``root`` / ``$RELGRAD_DATA`` / ``~/.relgrad/data``): the MAF-preprocessed
``power``, ``gas``, ``hepmass``, ``miniboone``, ``bsds300`` and ``mnist``.
Your own data: :meth:`Dataset.from_arrays`, :func:`load_data_file` (.npy/.npz/.csv), and
:func:`register_dataset` to reach a loader of yours through ``load_dataset(name)``.
Every LL has its yardstick: :func:`gaussian_test_ll`.
"""

from relgrad_core.data._arrays import Standardization
from relgrad_core.data.data_file import load_data_file
from relgrad_core.data.dataset import Dataset
from relgrad_core.data.gaussian import gaussian_log_prob, gaussian_test_ll
from relgrad_core.data.registry import (
    DATASETS,
    FILE_DATASETS,
    dataset_names,
    dataset_options,
    load_dataset,
    register_dataset,
    unregister_dataset,
)
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
    "Standardization",
    "bits_per_dim",
    "dataset_names",
    "dataset_options",
    "gaussian_log_prob",
    "gaussian_test_ll",
    "inverse_logit_transform",
    "load_data_file",
    "load_dataset",
    "logit_log_det",
    "logit_to_unit_log_prob",
    "logit_transform",
    "register_dataset",
    "unit_to_levels_log_prob",
    "unregister_dataset",
]
