"""relgrad_core: dense invertible flows trained by the relative gradient, and every baseline beside it.

Gresele et al., *Relative gradient optimization of the Jacobian term in unsupervised deep learning*,
NeurIPS 2020.
"""

from relgrad_core.activation import inverse_smooth_leaky_relu, log_derivative, smooth_leaky_relu
from relgrad_core.base import BASES, make_base
from relgrad_core.counting import StepCount, count_step
from relgrad_core.data import (
    DATASETS,
    Dataset,
    dataset_names,
    gaussian_test_ll,
    load_data_file,
    load_dataset,
    register_dataset,
)
from relgrad_core.device import resolve_device
from relgrad_core.flow import DenseFlow, Flow, SingularWeightError
from relgrad_core.lu_flow import LUFlow
from relgrad_core.methods import (
    FlopModel,
    MethodSpec,
    backward,
    flop_ratio,
    get_method,
    make_flow,
    matrix_flops,
    method_names,
    register_method,
    unavailable_methods,
    unregister_method,
)
from relgrad_core.plugins import load_plugins
from relgrad_core.timing import MatmulPeak, StepTiming, matmul_peak, time_step
from relgrad_core.training import Diverged, EpochRecord, History, evaluate_nll, fit

__all__ = [
    "BASES",
    "DATASETS",
    "Dataset",
    "DenseFlow",
    "Diverged",
    "EpochRecord",
    "FlopModel",
    "Flow",
    "History",
    "LUFlow",
    "MatmulPeak",
    "MethodSpec",
    "SingularWeightError",
    "StepCount",
    "StepTiming",
    "backward",
    "count_step",
    "dataset_names",
    "evaluate_nll",
    "fit",
    "flop_ratio",
    "gaussian_test_ll",
    "get_method",
    "inverse_smooth_leaky_relu",
    "load_data_file",
    "load_dataset",
    "load_plugins",
    "log_derivative",
    "make_base",
    "make_flow",
    "matmul_peak",
    "matrix_flops",
    "method_names",
    "register_dataset",
    "register_method",
    "resolve_device",
    "smooth_leaky_relu",
    "time_step",
    "unavailable_methods",
    "unregister_method",
]

# other libraries' flows (zuko, nflows) where installed, like a plugin but always on: every process that
# imports relgrad_core, Ray's workers included, knows them (relgrad_core.peers imports neither library)
import relgrad_core.peers  # noqa: F401

# last, so that a plugin module can import anything above from relgrad_core
load_plugins()
