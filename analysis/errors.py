"""The one exception the analysis raises for bad input."""

from __future__ import annotations


class ReportError(ValueError):
    """Bad input to the analysis: unknown or empty sweep, missing metrics, too few points to fit.

    The message always names the offending sweep, runs or metric so that the CLI can print it
    instead of a traceback.
    """
