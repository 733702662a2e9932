"""The issue's targets, read off the results.json of one or more runs of
`scripts/benchmark_quality.py`: one column per run, and how many runs met each target.

    python scripts/quality_targets.py runs/benchmark-quality/results.json [OTHER/results.json ...]

Runs from before the benchmark wrote its targets are read the same way: the targets are
computed from each run's figures (`quality.targets`), not taken from the file.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from quality.targets import table, targets  # this folder, run as a script


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, nargs="+", help="results.json of each run")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON instead")
    args = parser.parse_args(argv)
    runs = {}
    for path in args.results:
        try:
            results = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            parser.error(f"{path}: not a readable results.json ({error})")
        if not isinstance(results, dict) or not {"sgd", "uss"} & set(results):
            parser.error(f"{path}: not a benchmark_quality results.json (no sgd or uss half)")
        try:
            runs[str(path)] = targets(results)
        except KeyError as error:
            parser.error(f"{path}: a benchmark_quality results.json without {error}")
    if args.json:
        print(json.dumps(runs, indent=1))
    elif len(runs) == 1:
        print(table(next(iter(runs.values()))))
    else:
        print(across(runs))


def across(runs: dict[str, list[dict]]) -> str:
    """One row per target, one column per run (its margin, starred where missed), and how
    many of the runs that measured it met it."""
    names = list(runs)
    lines = [
        "| target | " + " | ".join(f"run {i + 1}" for i in range(len(names))) + " | met in |",
        "|---|" + "---|" * (len(names) + 1),
    ]
    for i, first in enumerate(runs[names[0]]):
        rows = [runs[name][i] for name in names]
        cells = [
            "n/a" if row["met"] is None else f"{row['margin']:+.4f}" + ("" if row["met"] else " *")
            for row in rows
        ]
        measured = [row for row in rows if row["met"] is not None]
        count = f"{sum(row['met'] for row in measured)} of {len(measured)}"
        lines.append(f"| {first['text']} | " + " | ".join(cells) + f" | {count} |")
    lines.append(
        "\nMargins: each run's figure minus its bar (* missed); for the run's time, the minutes"
        " left; for half the annotator's error, the share of turns kept beyond half. Runs:"
    )
    lines += [f"{i + 1}. {name}" for i, name in enumerate(names)]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
