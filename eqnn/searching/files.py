"""The files of a search folder and the errors a folder can raise."""

from __future__ import annotations

FORMAT = "eqnn-search/1"
SEARCH_FILE = "search.json"
RECORDS_FILE = "evaluations.jsonl"
CSV_FILE = "evaluations.csv"
RESULT_FILE = "result.json"
PLOT_FILE = "q_vs_rmps.png"
LOCK_FILE = ".lock"

MODES = ("constrained", "weighted")
COSTS = ("rmps", "bop", "nabs")  # the cost metric an Objective minimizes
ACQ_FUNCS = ("gp_hedge", "EI", "PI", "LCB")
INITIAL_POINT_GENERATORS = ("random", "sobol", "halton", "hammersly", "lhs", "grid")


class SearchMismatchError(ValueError):
    """The folder holds a different study (another space, objective, seed or optimizer setting)."""


class SearchLockedError(RuntimeError):
    """Another process is running a search in the same folder."""
