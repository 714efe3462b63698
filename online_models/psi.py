"""Distribution drift by the population stability index (PSI), against a reference window just behind.

Values arrive in blocks of ``block`` rows (one row = one decision, one column = one watched
value). After each block, every column's *current* window (the last ``current`` blocks) is
compared with its *reference* window (the ``reference`` blocks before those): the reference's
deciles are the bins, and

    PSI = sum over bins (cur% - ref%) * ln(cur% / ref%)

(0 = same distribution; 0.1 small; above 0.25 the distributions differ by any usual reading).
The reference slides along behind the current window, so a slow trend never piles up into an
alarm; an abrupt change shows while the reference is still from before it.

Hysteresis, per column: a column *opens* when its PSI reaches ``on`` and closes when it falls
back under ``off``. A column that opens makes a ``Shift`` naming the columns that moved most,
unless a shift was made in the last ``current + reference`` blocks: a change moves several
columns within a few blocks, and that is one episode, one shift.

>>> import random
>>> rng = random.Random(1)
>>> watch = PsiWatch(("amount", "noise"), block=100, current=4, reference=8)
>>> shifts = [s for i in range(6000) for s in [watch.add([rng.gauss(20 if i < 4000 else 30, 5),
...                                                       rng.random()])] if s]
>>> [(s.rows, s.moved[0].name, round(s.moved[0].reference), round(s.moved[0].current)) for s in shifts]
[(4100, 'amount', 20, 23)]
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

DECILES = np.linspace(0.1, 0.9, 9)
MIN_SHARE = 0.05  # of the reference, in every bin


@dataclass(frozen=True)
class Moved:
    """One column of a shift: its PSI and its mean in the reference and the current window."""

    name: str
    psi: float
    reference: float
    current: float


@dataclass(frozen=True)
class Shift:
    rows: int  # rows seen when the episode opened
    moved: tuple[Moved, ...]  # the columns at or above ``off``, largest PSI first (at least one)


def psi(reference: np.ndarray, current: np.ndarray) -> float:
    """PSI of ``current`` against ``reference`` over the reference's deciles (half a count added to
    every bin, so an empty bin reads as rare rather than impossible); NaN values are left out.

    >>> a = np.arange(1000.0)
    >>> round(psi(a, a), 3), round(psi(a, a + 500), 2)
    (0.0, 3.53)
    """
    reference, current = reference[~np.isnan(reference)], current[~np.isnan(current)]
    if not len(reference) or not len(current):
        return 0.0
    edges = _edges(reference)
    ref = np.bincount(np.searchsorted(edges, reference, side="right"), minlength=len(edges) + 1) + 0.5
    cur = np.bincount(np.searchsorted(edges, current, side="right"), minlength=len(edges) + 1) + 0.5
    ref, cur = ref / ref.sum(), cur / cur.sum()
    return float(np.sum((cur - ref) * np.log(cur / ref)))


class PsiWatch:
    """PSI of named columns, current window against the reference window just before it.

    Parameters
    ----------
    columns
        Names of the values in each row.
    block
        Rows per block; windows are whole blocks and PSI is computed once per block.
    current, reference
        Window lengths in blocks.
    on, off
        An episode opens at PSI >= ``on`` and closes when every column is under ``off``.
    top
        Columns named in a shift, at most.
    """

    def __init__(self, columns: tuple[str, ...], *, block: int = 250, current: int = 4, reference: int = 8,
                 on: float = 0.25, off: float = 0.1, top: int = 5) -> None:
        self.columns = columns
        self.block = block
        self.current = current
        self.reference = reference
        self.on = on
        self.off = off
        self.top = top
        self.rows = 0
        self.open: set[str] = set()  # columns whose PSI reached ``on`` and has not yet fallen under ``off``
        self.quiet = (current + reference) * block  # rows after a shift during which new columns join it
        self.last_shift = -self.quiet
        self.last_psi: dict[str, float] = {}
        self._rows: list[list[float]] = []
        self._blocks: deque[np.ndarray] = deque(maxlen=current + reference)

    def add(self, row: list[float]) -> Shift | None:
        """One row (NaN for a missing value); a ``Shift`` when an episode opens."""
        self.rows += 1
        self._rows.append(row)
        if len(self._rows) < self.block:
            return None
        self._blocks.append(np.array(self._rows, dtype=float))
        self._rows = []
        if len(self._blocks) < self._blocks.maxlen:
            return None
        return self._test()

    def _test(self) -> Shift | None:
        blocks = list(self._blocks)
        ref, cur = np.vstack(blocks[:self.reference]), np.vstack(blocks[self.reference:])
        self.last_psi = {name: psi(ref[:, i], cur[:, i]) for i, name in enumerate(self.columns)}
        newly = []
        for i, (name, p) in enumerate(self.last_psi.items()):
            if name in self.open and p < self.off:
                self.open.discard(name)
            elif name not in self.open and p >= self.on:
                self.open.add(name)
                newly.append(i)
        if not newly or self.rows - self.last_shift < self.quiet:
            return None  # nothing new, or part of the episode just signalled
        self.last_shift = self.rows
        others = sorted(((p, i) for i, p in enumerate(self.last_psi.values()) if p >= self.off and i not in newly),
                        reverse=True)
        ranked = sorted(((self.last_psi[self.columns[i]], i) for i in newly), reverse=True) + others
        return Shift(self.rows, tuple(
            Moved(self.columns[i], round(p, 4), _mean(ref[:, i]), _mean(cur[:, i])) for p, i in ranked[:self.top]))


def _edges(reference: np.ndarray) -> np.ndarray:
    """The reference's deciles, merging any bin that would hold less than ``MIN_SHARE`` of it: a
    value mostly at one point (a count that is usually 0) would otherwise get a sliver of a bin
    whose share swings from window to window.

    >>> _edges(np.array([0.0] * 95 + [1.0, 2.0, 3.0, 4.0, 5.0])), _edges(np.arange(10.0))
    (array([], dtype=float64), array([0.9, 1.8, 2.7, 3.6, 4.5, 5.4, 6.3, 7.2, 8.1]))
    """
    edges = np.unique(np.quantile(reference, DECILES))
    counts = np.bincount(np.searchsorted(edges, reference, side="right"), minlength=len(edges) + 1)
    least, kept, held = MIN_SHARE * len(reference), [], 0
    for i, count in enumerate(counts[:-1]):
        held += count
        if held >= least:
            kept.append(edges[i])
            held = 0
    if kept and held + counts[-1] < least:
        kept.pop()  # the last bin is too thin: it joins the one before
    return np.array(kept)


def _mean(values: np.ndarray) -> float:
    kept = values[~np.isnan(values)]
    return round(float(kept.mean()), 6) if len(kept) else math.nan
