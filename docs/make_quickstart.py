"""Regenerate the README's quick-start figure and numbers from one run of the study.

    python docs/make_quickstart.py              # runs (or resumes) experiments/quickstart.toml, ~7 min on 2 cores
    python docs/make_quickstart.py --no-run     # only rebuild from results/quickstart/results.json

It runs ``eqnn run`` on the study (every stage cached: a repeated run takes seconds), then

- writes ``docs/quickstart.png``: the study's ``q_vs_power.png`` and ``q_vs_rmps.png`` side by side;
- writes ``docs/quickstart.md``: the paragraph of numbers (from ``results.json``: CDC, the NN and its compressed
  version, with their optimal launch powers, gains over CDC on one basis, RMpS, and the compressed model's sparsity,
  clusters and weight bits measured from its weights), the run's wall time and provenance;
- replaces the text between ``<!-- quickstart:begin -->`` and ``<!-- quickstart:end -->`` in ``README.md`` with that
  paragraph, so that the README states what the code produced.

Options name other files (``--study``, ``--out``, ``--figure``, ``--numbers``, ``--readme``); ``--readme ""`` leaves
the README alone. Nothing here is imported by the package.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from eqnn.study import q_text

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- quickstart:begin -->", "<!-- quickstart:end -->"


def _method(results: dict, name: str) -> dict | None:
    return next((m for m in results["methods"] if m["method"] == name), None)


def _gain(m: dict) -> str:
    basis = "both counted from bit errors" if m["gain_basis"] == "BER" else "both implied by the SNR"
    return f"{m['gain_over_cdc_db']:+.2f} dB over CDC ({basis})"


def _power(m: dict) -> str:
    edge = " (the edge of the powers tried: optimum not bracketed)" if m.get("optimum_at_edge") else ""
    return f"{m['launch_power_dbm']:+g} dBm{edge}".replace("-", "\u2212")


def numbers_paragraph(results: dict) -> str:
    """The README's paragraph of numbers, from a study's ``results.json``."""
    cdc = _method(results, "CDC")
    parts = [f"CDC peaks at Q = {q_text(cdc)} at {_power(cdc)}."]
    nns = [m for m in results["methods"] if m["kind"] == "NN"]
    for nn in nns:
        parts.append(f"{nn['method']} reaches {q_text(nn)} at {_power(nn)}: {_gain(nn)}, for {nn['rmps']:,.0f} RMpS.")
        comp = _method(results, f"{nn['method']} compressed")
        if comp is not None:
            actual = comp.get("actual") or {}
            what = ""
            if actual:
                what = (f" ({actual['kernel_sparsity']:.0%} of the kernel weights zero, at most "
                        f"{actual['max_distinct_kernel_values']} distinct values per kernel, "
                        f"{actual['weight_bits'] or 32}-bit weights, measured from the model)")
            n_eval = len(results["compression"].get(nn["method"], {}).get("evaluations", [])) or None
            search = f"The compression search{f' ({n_eval} evaluations)' if n_eval else ''}"
            parts.append(f"{search} found {q_text(comp)} at {comp['rmps']:,.0f} RMpS{what}: {_gain(comp)}.")
    dbp = [m for m in results["methods"] if m["method"].startswith("DBP-")]
    if dbp:
        parts.append("DBP: " + "; ".join(f"{m['method']} {q_text(m)} at {_power(m)}" for m in dbp) + ".")
    p = results.get("provenance", {})
    if p:
        commit = (p.get("git_commit") or "no git")[:10] + (" (dirty)" if p.get("git_dirty") else "")
        parts.append(f"Run: {p.get('wall_time_s', results.get('wall_time_s', 0)):.0f} s on {p.get('cpu_count')} "
                     f"cores, eqnn {p.get('eqnn_version')} at {commit}, `{p.get('command')}`.")
    return " ".join(parts)


def side_by_side(left: Path, right: Path, out: Path) -> Path:
    """``left`` and ``right`` (PNG) next to each other in one PNG (heights padded with white)."""
    import numpy as np
    from matplotlib import image

    a, b = image.imread(str(left)), image.imread(str(right))
    channels = max(a.shape[2], b.shape[2])

    def prepared(img):
        if img.shape[2] < channels:
            img = np.concatenate([img, np.ones(img.shape[:2] + (channels - img.shape[2],), img.dtype)], axis=2)
        pad = max(a.shape[0], b.shape[0]) - img.shape[0]
        return np.pad(img, ((0, pad), (0, 0), (0, 0)), constant_values=1.0)

    out.parent.mkdir(parents=True, exist_ok=True)
    image.imsave(str(out), np.concatenate([prepared(a), prepared(b)], axis=1))
    return out


def replace_marked(text: str, paragraph: str) -> str:
    """``text`` with the part between :data:`BEGIN` and :data:`END` replaced by ``paragraph``."""
    if BEGIN not in text or END not in text or text.index(BEGIN) > text.index(END):
        raise SystemExit(f"the README has no {BEGIN} ... {END} section to replace")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{paragraph}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", default=str(ROOT / "experiments" / "quickstart.toml"))
    parser.add_argument("--out", default=str(ROOT / "results" / "quickstart"), help="the study's results folder")
    parser.add_argument("--figure", default=str(ROOT / "docs" / "quickstart.png"))
    parser.add_argument("--numbers", default=str(ROOT / "docs" / "quickstart.md"))
    parser.add_argument("--readme", default=str(ROOT / "README.md"), help='"" leaves the README alone')
    parser.add_argument("--no-run", action="store_true", help="use the results already in --out")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if not args.no_run:
        from eqnn.cli import main as eqnn_main

        code = eqnn_main(["run", args.study, "--out", str(out)])
        if code:
            return code
    results = json.loads((out / "results.json").read_text())
    side_by_side(out / "q_vs_power.png", out / "q_vs_rmps.png", Path(args.figure))
    paragraph = numbers_paragraph(results)
    Path(args.numbers).write_text(f"<!-- written by docs/make_quickstart.py from {out / 'results.json'} -->\n"
                                  f"{paragraph}\n")
    if args.readme:
        readme = Path(args.readme)
        readme.write_text(replace_marked(readme.read_text(), paragraph))
    print(f"wrote {args.figure}, {args.numbers}" + (f" and the quick-start numbers of {args.readme}"
                                                    if args.readme else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
