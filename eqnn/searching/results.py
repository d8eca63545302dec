"""What a search found: :class:`Evaluation`, :class:`SearchResult` (best, Pareto front, files, plot)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from .files import CSV_FILE, FORMAT, PLOT_FILE, RESULT_FILE
from .objective import Objective, _finite
from .space import Dimension

# --------------------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Evaluation:
    """One finished call of ``evaluate``."""

    call: int
    params: dict
    metrics: dict
    objective: float
    feasible: bool | None
    seconds: float
    finished: str = ""

    @property
    def q_db(self) -> float:
        return float(self.metrics["q_db"])

    @property
    def rmps(self) -> float:
        return float(self.metrics["rmps"])

    def to_dict(self) -> dict:
        return {
            "call": self.call,
            "params": dict(self.params),
            "metrics": dict(self.metrics),
            "objective": self.objective,
            "feasible": self.feasible,
            "seconds": self.seconds,
            "finished": self.finished,
        }


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the non-dominated ``(rmps, q_db)`` points (minimize RMpS, maximize Q), sorted by RMpS.

    A point is dominated when another has RMpS <= and Q >= with at least one strict. Of exactly equal points only
    the first is kept. Along the returned front, RMpS and Q both strictly increase.
    """
    pts = [(float(r), float(q)) for r, q in points]
    order = sorted(range(len(pts)), key=lambda i: (pts[i][0], -pts[i][1], i))
    front: list[int] = []
    best_q = -math.inf
    for i in order:
        if pts[i][1] > best_q:
            front.append(i)
            best_q = pts[i][1]
    return front


def _best_key(e: Evaluation) -> tuple:
    """Sort key of :attr:`SearchResult.best`: objective, then lower RMpS, higher Q, earlier call."""
    return (e.objective, e.rmps, -e.q_db, e.call)


@dataclass
class SearchResult:
    """All evaluations of a study, in call order, with the views a reader asks for."""

    evaluations: list[Evaluation]
    space: tuple[Dimension, ...]
    objective: Objective
    spec: dict = field(default_factory=dict)
    spec_hash: str = ""
    folder: Path | None = None
    n_new: int = 0

    @property
    def best(self) -> Evaluation | None:
        """The lowest objective value; for "constrained" the cheapest feasible point if any.

        Ties of the objective are common (under "constrained" every feasible point at or above the RMpS ceiling
        scores 0, and infeasible points score by their Q alone): they are broken by lower RMpS, then higher Q,
        then earlier call. The best point is therefore always on :attr:`pareto`: in both modes the objective never
        gets better with higher RMpS or lower Q, so a point that dominates the best would score at most as well,
        i.e. tie with it, and win the tie-break. For "constrained" with a feasible point, ``best`` is
        :attr:`cheapest_feasible`. (With an objective ``cost`` other than "rmps", the objective ranks by that
        cost, and the best point may lie off the Q-versus-RMpS front and differ from :attr:`cheapest_feasible`.)
        """
        if not self.evaluations:
            return None
        return min(self.evaluations, key=_best_key)

    @property
    def cheapest_feasible(self) -> Evaluation | None:
        """Lowest RMpS among the evaluations with Q >= q_target (higher Q, then earlier call on ties)."""
        if self.objective.q_target is None:
            return None
        ok = [e for e in self.evaluations if e.q_db >= self.objective.q_target]
        if not ok:
            return None
        return min(ok, key=lambda e: (e.rmps, -e.q_db, e.call))

    @property
    def pareto(self) -> list[Evaluation]:
        """The Q-versus-RMpS Pareto front over all evaluations, sorted by RMpS."""
        idx = pareto_front([(e.rmps, e.q_db) for e in self.evaluations])
        return [self.evaluations[i] for i in idx]

    def to_dict(self) -> dict:
        best = self.best
        cheapest = self.cheapest_feasible
        return {
            "format": FORMAT,
            "spec_hash": self.spec_hash,
            "spec": self.spec,
            "objective": self.objective.spec(),
            "n_evaluations": len(self.evaluations),
            "n_feasible": None if self.objective.q_target is None else sum(1 for e in self.evaluations if e.feasible),
            "best": best.to_dict() if best else None,
            "cheapest_feasible": cheapest.to_dict() if cheapest else None,
            "pareto_calls": [e.call for e in self.pareto],
            "evaluations": [e.to_dict() for e in self.evaluations],
        }

    def csv_rows(self) -> list[dict]:
        names = [d.name for d in self.space]
        reserved = set(names) | {"call", "objective", "feasible", "pareto", "seconds"}
        on_front = {e.call for e in self.pareto}
        rows = []
        for e in self.evaluations:
            row = {"call": e.call}
            row.update({n: e.params.get(n) for n in names})
            for k, v in e.metrics.items():
                row[f"metric:{k}" if k in reserved else k] = v
            row.update(objective=e.objective, feasible=e.feasible, pareto=e.call in on_front, seconds=e.seconds)
            rows.append(row)
        return rows

    def write_csv(self, path: str | Path) -> Path:
        from eqnn.report import write_csv

        rows = self.csv_rows()
        if not rows:
            names = ["call", *[d.name for d in self.space], "q_db", "rmps", "objective", "feasible", "pareto"]
            return write_csv(path, [], columns=names)
        return write_csv(path, rows)

    def write_json(self, path: str | Path) -> Path:
        from eqnn.report import write_json

        return write_json(path, self.to_dict())

    def plot(self, path: str | Path, references: Mapping[str, tuple[float, float]] | None = None, title: str = ""):
        """Q versus RMpS (log x): every evaluation, the Pareto front as a step line, the best point, references.

        ``references``: ``{"CDC": (rmps, q_db), "DBP-1": (rmps, q_db)}``, drawn as labelled markers.
        """
        references = _check_references(references)
        from eqnn.report import new_figure, save_figure

        fig, ax = new_figure()  # the caller's matplotlib backend and figures are untouched
        evs = self.evaluations
        if evs:
            feasible = [e for e in evs if e.feasible is not False]
            infeasible = [e for e in evs if e.feasible is False]
            if feasible:
                ax.plot(
                    [e.rmps for e in feasible],
                    [e.q_db for e in feasible],
                    "o",
                    color="C0",
                    ms=4,
                    alpha=0.6,
                    label=f"evaluations ({len(evs)})" if not infeasible else f"Q >= target ({len(feasible)})",
                )
            if infeasible:
                ax.plot(
                    [e.rmps for e in infeasible],
                    [e.q_db for e in infeasible],
                    "o",
                    color="0.6",
                    ms=4,
                    alpha=0.6,
                    label=f"Q < target ({len(infeasible)})",
                )
            front = self.pareto
            ax.step(
                [e.rmps for e in front],
                [e.q_db for e in front],
                where="post",
                color="C1",
                lw=1.5,
                label=f"Pareto front ({len(front)})",
            )
            best = self.best
            ax.plot(
                [best.rmps],
                [best.q_db],
                "*",
                color="C3",
                ms=14,
                mec="k",
                mew=0.6,
                zorder=5,
                label=f"best (call {best.call})",
            )
        if self.objective.q_target is not None:
            ax.axhline(
                self.objective.q_target, color="k", ls="--", lw=0.8, label=f"Q target {self.objective.q_target:g} dB"
            )
        markers = "sD^vP<>"
        for i, (name, (r, q)) in enumerate(references.items()):
            ax.plot([r], [q], markers[i % len(markers)], color=f"C{(i + 4) % 10}", ms=8, mec="k", mew=0.6, zorder=4)
            ax.annotate(name, (r, q), textcoords="offset points", xytext=(6, 4), fontsize="small")
        ax.set_xscale("log")
        ax.set_xlabel("real multiplications per symbol (RMpS)")
        ax.set_ylabel("Q-factor (dB)")
        ax.grid(True, which="both", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
        if title:
            ax.set_title(title, fontsize="medium")
        return save_figure(fig, path)

    def write(self, folder: str | Path | None = None, references=None, title: str = "") -> dict[str, Path]:
        """Write ``evaluations.csv``, ``result.json`` and ``q_vs_rmps.png`` into ``folder`` (default: the study's)."""
        folder = Path(folder) if folder is not None else self.folder
        if folder is None:
            raise ValueError("SearchResult.write: no folder given and the result has none")
        return {
            "csv": self.write_csv(folder / CSV_FILE),
            "json": self.write_json(folder / RESULT_FILE),
            "plot": self.plot(folder / PLOT_FILE, references=references, title=title),
        }

    def summary(self) -> str:
        n = len(self.evaluations)
        lines = [f"search: {n} evaluations ({self.n_new} new)" + (f" in {self.folder}" if self.folder else "")]
        best = self.best
        if best is not None:
            lines.append(
                f"  best: call {best.call}, Q {best.q_db:.2f} dB, RMpS {best.rmps:.4g}, objective {best.objective:.4g},"
                f" params {best.params}"
            )
        if self.objective.q_target is not None:
            cheapest = self.cheapest_feasible
            if cheapest is None:
                lines.append(f"  no evaluation reached the Q target {self.objective.q_target:g} dB")
            elif cheapest is not best:
                lines.append(
                    f"  cheapest with Q >= {self.objective.q_target:g} dB: call {cheapest.call},"
                    f" RMpS {cheapest.rmps:.4g}, Q {cheapest.q_db:.2f} dB"
                )
        if n:
            front = ", ".join(f"{e.rmps:.3g}/{e.q_db:.2f}" for e in self.pareto)
            lines.append(f"  Pareto front (RMpS/Q dB): {front}")
        return "\n".join(lines)


def _check_references(references) -> dict[str, tuple[float, float]]:
    if references is None:
        return {}
    if not isinstance(references, Mapping):
        raise ValueError(f"references must be a dict name -> (rmps, q_db), got {references!r}")
    out = {}
    for name, pair in references.items():
        try:
            r, q = pair
        except (TypeError, ValueError):
            raise ValueError(f"reference {name!r}: expected (rmps, q_db), got {pair!r}") from None
        r = _finite("rmps", r, f"reference {name!r}")
        q = _finite("q_db", q, f"reference {name!r}")
        if r <= 0:
            raise ValueError(f"reference {name!r}: rmps must be > 0 for the log axis, got {r}")
        out[str(name)] = (r, q)
    return out
