"""Ray Tune scaling and HPO sweeps over relgrad flows, tracked in MLflow, and the `relgrad` CLI."""
