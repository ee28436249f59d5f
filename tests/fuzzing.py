"""Hypothesis settings for the fuzz tests: a small, deterministic subset in `make test`, many more examples with
MASKLOOP_FUZZ=full (the long runner). The example database never lands in the repository."""

from __future__ import annotations

import os
import tempfile

from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase

from seg_core import environment

FULL = (environment.get(environment.FUZZ) or "").lower() == "full"
# The long runner tries this many times more examples, at random (a failure found there is saved in a temporary
# database, so a rerun on the same machine replays it first).
FULL_FACTOR = 25
_CHECKS = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large]


def fuzz(examples: int) -> settings:
    """Settings for one fuzz test: `examples` cases in the fast subset, derandomized so CI is deterministic."""
    if FULL:
        db = DirectoryBasedExampleDatabase(os.path.join(tempfile.gettempdir(), "maskloop-hypothesis"))
        return settings(max_examples=examples * FULL_FACTOR, deadline=None, database=db,
                        suppress_health_check=_CHECKS)
    return settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                    suppress_health_check=_CHECKS, print_blob=False)
