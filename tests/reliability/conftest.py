"""Fixtures of the fault-injection suite: the study suite's embedded Ray and temporary stores."""

from __future__ import annotations

from tests.study.conftest import ray_session, store

__all__ = ["ray_session", "store"]
