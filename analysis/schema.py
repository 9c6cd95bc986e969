"""Names from the MLflow contract that the `study` package writes, and derived constants."""

from __future__ import annotations

#: Methods in display order; the first is the one every speedup is measured against.
METHOD_ORDER: tuple[str, ...] = ("relative", "ordinary", "autodiff", "jacobian", "lu", "mlp")
REFERENCE_METHOD = "relative"
#: The plain MLP (no log-det term): the cost floor that the relative gradient is compared with.
FLOOR_METHOD = "mlp"
#: Other libraries' flows run as methods (``relgrad_core.peers``, the ``peers`` extra) -> their library, in
#: display order: shown after the built-ins, before methods users register.
PEER_METHODS: dict[str, str] = {"zuko_lu": "zuko", "nflows_lu": "nflows", "zuko_maf": "zuko"}


# --------------------------------------------------------------------------------------------
# The tracking contract: `study` writes these names, `analysis` reads them (tests/test_schema.py ties
# both sides). Torch-free on purpose: analysis must never import torch, ray or study.
# --------------------------------------------------------------------------------------------
STATUS_OK = "ok"
STATUS_DIVERGED = "diverged"
STATUS_SKIPPED = "skipped_over_budget"
STATUS_FAILED = "failed"
#: A trial cut short by the user (Ctrl-C) or by the death of its driver: re-run on resume, never `ok`.
STATUS_INTERRUPTED = "interrupted"
#: Set when a child run starts; a run still `running` after its sweep ended belongs to a dead driver.
STATUS_RUNNING = "running"
#: Final statuses a child run can end with.
STATUSES: tuple[str, ...] = (STATUS_OK, STATUS_DIVERGED, STATUS_SKIPPED, STATUS_FAILED, STATUS_INTERRUPTED)
#: Statuses that count as finished on resume (the trial is not re-run).
FINISHED_STATUSES: tuple[str, ...] = (STATUS_OK, STATUS_DIVERGED, STATUS_SKIPPED)

# tag names
TAG_SWEEP = "sweep"
TAG_ROLE = "role"
TAG_KIND = "kind"
TAG_STATUS = "status"
TAG_STATUS_REASON = "status_reason"
TAG_TRIAL_ID = "trial_id"
TAG_GIT_COMMIT = "git_commit"
#: MLflow's own tag that makes a run a child of another (the MLflow UI nests runs by it).
TAG_PARENT_RUN_ID = "mlflow.parentRunId"
#: How a trial's training ended: ``relgrad_core.training.STOP_REASONS`` (``patience`` = converged); a cap
#: that cut a still-improving fit ends in :data:`STILL_IMPROVING` (tied to the core by tests/test_schema.py).
TAG_STOPPED_REASON = "stopped_reason"
STILL_IMPROVING = " (still improving)"
#: Why a trial has no ``gaussian_test_ll`` (too few training rows, a singular covariance, too costly where
#: the true LL is known): the yardstick is never silently absent. Empty when the yardstick was computed.
TAG_GAUSSIAN_ABSENT = "gaussian_absent_reason"
#: Where a trial ran (``study.tracking.environment_tags``): the device's name (a GPU's, or ``cpu: <model>``),
#: torch and CUDA versions, the CPU model, the host and the Ray node.
TAG_DEVICE_NAME = "device_name"
TAG_TORCH_VERSION = "torch_version"
TAG_CUDA_VERSION = "cuda_version"
TAG_CPU_MODEL = "cpu_model"
TAG_HOST = "host"
TAG_NODE_ID = "node_id"
ENVIRONMENT_TAGS: tuple[str, ...] = (
    TAG_DEVICE_NAME,
    TAG_TORCH_VERSION,
    TAG_CUDA_VERSION,
    TAG_CPU_MODEL,
    TAG_HOST,
    TAG_NODE_ID,
)
ROLE_PARENT = "parent"
ROLE_TRIAL = "trial"
#: The retrained best configuration of an HPO sweep.
ROLE_BEST = "best"
#: ``relgrad train``'s default configuration retrained beside it, on the same schedule: what the search gains.
ROLE_DEFAULT = "default"
#: The ``kind`` tag of a parent run: a scaling grid (``relgrad scaling``), a hyperparameter search
#: (``relgrad tune``), or one training run (``relgrad train``); ``study.kinds`` ties each to its command.
KIND_SCALING = "scaling"
KIND_HPO = "hpo"
KIND_TRAIN = "train"
KINDS: tuple[str, ...] = (KIND_SCALING, KIND_HPO, KIND_TRAIN)
#: The MLflow experiment sweeps log to unless ``--experiment`` names another.
DEFAULT_EXPERIMENT = "relgrad"
#: Grid coordinates every child run carries as tags as well as params (the runs table colours, groups
#: and filters by tags).
POINT_TAGS: tuple[str, ...] = ("method", "dim", "depth", "batch_size")

INT_PARAMS: tuple[str, ...] = ("dim", "depth", "batch_size", "seed")
FLOAT_PARAMS: tuple[str, ...] = ("lr", "alpha")
STR_PARAMS: tuple[str, ...] = ("method", "dataset", "device", "dtype")
TAG_COLUMNS: tuple[str, ...] = (
    TAG_STATUS,
    TAG_STATUS_REASON,
    *ENVIRONMENT_TAGS,
    TAG_GIT_COMMIT,
    TAG_TRIAL_ID,
    TAG_STOPPED_REASON,
    TAG_GAUSSIAN_ABSENT,
)
#: Set on a trial whose step runs operations the counter cannot count (neither a counted product or
#: decomposition, nor elementwise, nor a view): their aten names, comma-separated. Absent when there are none.
TAG_UNCOUNTED_OPS = "uncounted_ops"
#: Tags a run may carry or not (loaded as columns, "" when absent).
OPTIONAL_TAG_COLUMNS: tuple[str, ...] = (TAG_UNCOUNTED_OPS,)
#: On the parent run of a scaling sweep: the side n of the n×n GEMM that measured ``matmul_peak_gflops``,
#: the device and the threads it ran on (a trial's resources).
TAG_MATMUL_PEAK_SIZE = "matmul_peak_size"
TAG_MATMUL_PEAK_DEVICE = "matmul_peak_device"
TAG_MATMUL_PEAK_THREADS = "matmul_peak_threads"
#: Parent-run metric: the best rate (GFLOP/s) of that GEMM in the trials' dtype, measured once per sweep.
PEAK_METRIC = "matmul_peak_gflops"
#: Metrics logged once at the end of training, at the last step.
FINAL_METRICS: tuple[str, ...] = (
    "test_ll",
    "true_test_ll",
    "gaussian_test_ll",
    "ll_offset",
    "reported_test_ll",
    "reported_gaussian_test_ll",
    "kl_gap",
    "gain_over_gaussian",
)
#: Metrics read as their final value per run (MLflow keeps the value at the largest step).
#: Step timings: ``sec_per_iter`` is the median of the repeats, ``sec_per_iter_min`` the minimum (the
#: contention-robust statistic the cost models are fitted on), ``sec_per_iter_iqr`` the interquartile range,
#: ``timing_repeats`` how many steps were timed, ``timing_retimed`` 1 when a disturbed first timing was
#: replaced by a longer one, ``load_avg_1m`` the machine's 1-minute load average when the step was timed,
#: ``flop_ratio`` the method's matrix FLOPs per step over the MLP's (from the core's method registry; not
#: logged for a method without a FLOP model, e.g. a peer).
#: Counted work of one step at the trial's D, B and depth (``relgrad_core.counting``, no clock, every method,
#: peers included): ``flops_per_step`` the FLOPs of its matrix products and linear algebra,
#: ``flops_cubic_per_step`` the part of them that grows as D³ at a fixed B (decompositions, inverses, D×D×D
#: products), ``bytes_per_step`` the sizes of every data-moving operation's tensor inputs and outputs (an
#: upper bound on its memory traffic).
#: Likelihoods: ``val_ll``, ``test_ll`` and ``gaussian_test_ll`` (full-covariance Gaussian fitted on train,
#: the yardstick) are per-sample means on the tensors the flow is trained on (after any standardisation);
#: ``reported_test_ll = test_ll + ll_offset`` and ``reported_gaussian_test_ll`` are the same in the data set's
#: documented space (``Dataset.ll_space``, e.g. digits' logit space before standardisation).
#: ``kl_gap = true_test_ll − test_ll`` (teacher data: ≈ KL(true ‖ model) ≥ 0, nats) and
#: ``gain_over_gaussian = test_ll − gaussian_test_ll`` (nats over the yardstick) are logged at the end.
#: Per evaluation: ``val_ll`` and ``train_ll`` are exact LLs (``train_ll`` on a fixed subset of the
#: training split as large as the validation split), so they compare; ``train_data_nll`` is the mean
#: data-term NLL of the epoch's batches (no log-det term: what the gradient saw, not a likelihood).
METRICS: tuple[str, ...] = (
    "sec_per_iter",
    "sec_per_iter_min",
    "sec_per_iter_iqr",
    "timing_repeats",
    "timing_retimed",
    "load_avg_1m",
    "flop_ratio",
    "flops_per_step",
    "flops_cubic_per_step",
    "bytes_per_step",
    "peak_mem_mb",
    "train_ll",
    "val_ll",
    "train_data_nll",
    "train_time_s",
    *FINAL_METRICS,
)
#: Metrics the report writes back onto each trial run, computed across the trials of a sweep (so that the
#: MLflow UI compares them too): ``time_to_target_s``, training seconds until the validation LL came within
#: 1 nat of the best any method reached at that D and seed and stayed there (absent: never), and that
#: ``target_ll``.
REPORT_TRIAL_METRICS: tuple[str, ...] = ("time_to_target_s", "target_ll")
#: Metrics logged against the training step; their whole history is loaded for the learning views.
HISTORY_METRICS: tuple[str, ...] = ("val_ll", "train_ll", "train_data_nll", "train_time_s")

#: Metric that every `ok` trial of a sweep of this kind must carry.
REQUIRED_METRIC: dict[str, str] = {KIND_SCALING: "sec_per_iter", KIND_HPO: "val_ll"}

#: A timing whose spread IQR/median exceeds this counts as disturbed: ``relgrad_core.timing``'s
#: ``RETIME_THRESHOLD`` (re-measured then), mirrored here torch-free for the report, which flags such
#: points (tied by tests/test_schema.py).
DISTURBED_SPREAD = 0.25


# --------------------------------------------------------------------------------------------
# How the analysis groups the loaded runs (column names are the tags and params above)
# --------------------------------------------------------------------------------------------
#: One curve: a method at one depth and batch size, in one sweep on one device (a cost model each).
FIT_GROUP: tuple[str, ...] = (TAG_SWEEP, TAG_DEVICE_NAME, "method", "depth", "batch_size")
#: The curves compared with each other (speedups, crossovers): FIT_GROUP without the method.
CONFIG_GROUP: tuple[str, ...] = tuple(key for key in FIT_GROUP if key != "method")

#: The report's default prediction D, which ``relgrad report --help`` states before pandas is loaded:
#: the largest measured D times PREDICT_EXTEND_FACTOR, and the largest D of the paper's experiments.
PREDICT_EXTEND_FACTOR = 4
PAPER_MAX_DIM = 23_552


# --------------------------------------------------------------------------------------------
# Curves on a sweep's parent run, logged by the driver as each trial ends: one point per trial with
# ``step = D``, so that MLflow's charts draw each quantity against the dimension while the sweep runs.
# Key ``<quantity>/<method>``, plus ``/L<depth>`` and ``/B<batch size>`` when the sweep has several
# depths or batch sizes (e.g. ``step_s/relative/L4/B256``); the Gaussian yardstick depends on the data
# only, so it is one curve. One point per key and D: the first ``ok`` trial there (a sweep with several
# learning rates times each D once per rate; the timing does not depend on it). A resumed sweep adds
# points only at D it has not logged yet.
# --------------------------------------------------------------------------------------------
CURVE_STEP_S = "step_s"
CURVE_PEAK_MEM = "peak_mem_mb"
CURVE_TEST_LL = "test_ll"
CURVE_GAUSSIAN = "gaussian_test_ll"
#: Child-run metric each curve plots: the step's fastest repeat (the statistic the cost models fit),
#: peak memory, and the test LLs in the data set's reported space.
CURVE_SOURCES: dict[str, str] = {
    CURVE_STEP_S: "sec_per_iter_min",
    CURVE_PEAK_MEM: "peak_mem_mb",
    CURVE_TEST_LL: "reported_test_ll",
    CURVE_GAUSSIAN: "reported_gaussian_test_ll",
}
#: Curves that are one per method (the yardstick is not).
PER_METHOD_CURVES: tuple[str, ...] = (CURVE_STEP_S, CURVE_PEAK_MEM, CURVE_TEST_LL)


def curve_key(
    quantity: str, method: str | None = None, depth: int | None = None, batch: int | None = None
) -> str:
    """``step_s/relative``, ``step_s/relative/L4/B256`` (depth, batch given when the sweep varies them)."""
    parts = [quantity] if method is None else [quantity, method]
    parts += [] if depth is None else [f"L{depth}"]
    parts += [] if batch is None else [f"B{batch}"]
    return "/".join(parts)


# --------------------------------------------------------------------------------------------
# The verdict on a sweep's parent run, logged after a report (analysis.verdict_tracking): tags
# ``order_<method>`` (``quadratic`` / ``cubic`` / ``not fitted``, the headline order) and, where the
# report has them, ``order_counted_<method>`` / ``order_timed_<method>``; metrics of the curve that
# reached the largest D: ``c/<method>`` (s/D³) with ``c_low/<method>`` / ``c_high/<method>`` (its 95%
# interval), ``d3_share/<method>`` (c·D³/t(D) at the largest measured D), and at each predicted D
# (``step = D``) ``speedup/<method>`` (t_method / t_relative) with ``speedup_low`` / ``speedup_high``.
# --------------------------------------------------------------------------------------------
VERDICT_ORDER_TAGS: dict[str, str] = {
    "order": "order_",
    "order_counted": "order_counted_",
    "order_timed": "order_timed_",
}
VERDICT_METRICS: dict[str, str] = {
    "c": "c/",
    "c_low": "c_low/",
    "c_high": "c_high/",
    "d3_share_at_max": "d3_share/",
}
SPEEDUP_METRICS: dict[str, str] = {
    "speedup_of_reference": "speedup/",
    "speedup_low": "speedup_low/",
    "speedup_high": "speedup_high/",
}


def method_sort_key(method: str) -> tuple[int, str]:
    """Sort key putting the built-in methods in :data:`METHOD_ORDER`, then the peers in
    :data:`PEER_METHODS`' order, then unknown ones by name."""
    known = (*METHOD_ORDER, *PEER_METHODS)
    if method in known:
        return (known.index(method), method)
    return (len(known), method)
