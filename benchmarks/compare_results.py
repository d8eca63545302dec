"""Compare two ``results.json`` of an ``eqnn run`` study, ignoring timings and output folders.

The check that a refactor changed no result (issue 18): run the small study of ``refactor_check_study.toml`` (MLP,
biLSTM and CNN+biLSTM, magnitude and structured pruning; about 80 s on 2 cores) before and after, then compare::

    git worktree add /tmp/before <old commit>
    (cd /tmp/before && PYTHONPATH=$PWD eqnn run $OLDPWD/benchmarks/refactor_check_study.toml --out /tmp/a --quiet)
    eqnn run benchmarks/refactor_check_study.toml --out /tmp/b --quiet
    python benchmarks/compare_results.py /tmp/a/results.json /tmp/b/results.json   # exit 0: identical

Prints each differing path and exits 1 if any; two runs of the same commit give 0 differences.
"""

import json
import sys
from pathlib import Path

IGNORE = {"seconds", "wall_time_s", "folder", "model_folder", "source"}


def differences(a, b, path: str = "") -> list[str]:
    """The paths where ``a`` and ``b`` differ (keys in :data:`IGNORE` skipped), with both values."""
    if type(a) is not type(b):
        return [f"{path}: type {repr(a)[:80]} vs {repr(b)[:80]}"]
    if isinstance(a, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            if key in IGNORE:
                continue
            if key not in a or key not in b:
                out.append(f"{path}/{key}: only in {'the first' if key in a else 'the second'}")
            else:
                out.extend(differences(a[key], b[key], f"{path}/{key}"))
        return out
    if isinstance(a, list):
        if len(a) != len(b):
            return [f"{path}: length {len(a)} vs {len(b)}"]
        return [d for i, (u, v) in enumerate(zip(a, b)) for d in differences(u, v, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {repr(a)[:80]} vs {repr(b)[:80]}"]


def main() -> int:
    if len(sys.argv) != 3:
        print("usage: python benchmarks/compare_results.py A/results.json B/results.json")
        return 2
    first, second = (json.loads(Path(f).read_text()) for f in sys.argv[1:3])
    found = differences(first, second)
    print("\n".join(found))
    print(f"differences: {len(found)}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
