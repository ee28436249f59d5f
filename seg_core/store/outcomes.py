"""What a person did with each of a model's proposals in the review queue: accepted as it was, fixed, or skipped."""

from __future__ import annotations

import time
from dataclasses import dataclass

from seg_core.store.db import Database

OUTCOMES = ("accepted", "fixed", "skipped")


@dataclass(frozen=True)
class Tally:
    accepted: int = 0
    fixed: int = 0
    skipped: int = 0

    @property
    def decided(self) -> int:
        """Proposals a person judged: accepted as they were, or opened to fix."""
        return self.accepted + self.fixed

    @property
    def rate(self) -> float | None:
        """The share of judged proposals accepted without an edit; None before any."""
        return self.accepted / self.decided if self.decided else None


class Outcomes:
    """Append-only: every tab's Accept, Fix and Skip is a row of its own, so two tabs never lose a count."""

    def __init__(self, database: Database):
        self._db = database

    def add(self, run_id: str, image_id: int, outcome: str) -> None:
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome is one of {OUTCOMES}, not {outcome!r}")
        with self._db.connection() as conn:
            conn.execute("INSERT INTO proposal_outcomes (run_id, image_id, outcome, at) VALUES (?, ?, ?, ?)",
                         (run_id, int(image_id), outcome, time.time()))

    def tally(self, run_id: str) -> Tally:
        with self._db.connection() as conn:
            rows = conn.execute("SELECT outcome, COUNT(*) FROM proposal_outcomes WHERE run_id = ? GROUP BY outcome",
                                (run_id,)).fetchall()
        return Tally(**{r[0]: int(r[1]) for r in rows})
