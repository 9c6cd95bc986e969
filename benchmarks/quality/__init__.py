"""Quality: does the relative gradient reach the test log-likelihood of the ordinary one?

``python -m benchmarks.quality [--quick] [--experiments digits,table,teacher] [--seeds 5] [--workers 2]``;
``--experiments peers`` runs relgrad's flows beside zuko's and nflows' (the ``peers`` extra).

Every comparison is *paired*: one seed fixes the split, the dequantisation noise, the orthogonal init and
the batch order, and both arms see exactly that (:mod:`~benchmarks.quality.stats`). Fits stop on the
exact validation LL (patience 50 on digits) with a far epoch cap that is flagged if it ever cuts a run.
Every LL is in its data set's reported space next to the full-covariance Gaussian yardstick of the same
split (:func:`relgrad_core.gaussian_test_ll`).

Modules: ``stats`` (paired differences), ``runs`` (one run, the loop), ``variants`` (weight-only metric,
folded init), ``results`` (typed arms/comparisons), one module per experiment (``digits``, ``table``,
``teacher``, ``peers``, ``budget``), ``summary`` (markdown from the typed results), ``__main__`` (CLI).
"""
