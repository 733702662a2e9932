"""The issue's targets, read off the results.json of one or more runs of
`scripts/benchmark_quality.py`: one column per run, how many runs met each target and the
mean margin over them with its 95% t interval; where runs measured stage 1 on ratings alone
(`--uss-ratings-only`), that lead pooled over them the same way.

    python scripts/quality_targets.py runs/benchmark-quality/results.json [OTHER/results.json ...]

Runs from before the benchmark wrote its targets are read the same way: the targets are
computed from each run's figures (`quality.targets`), not taken from the file.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from quality.targets import (  # this folder, run as a script
    over_runs,
    stage1_lead_on_ratings,
    stage1_leads_by_checkpoint,
    table,
    targets,
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, nargs="+", help="results.json of each run")
    parser.add_argument(
        "--json",
        action="store_true",
        help="print each run's rows and the pooled rows as JSON instead",
    )
    args = parser.parse_args(argv)
    runs, leads, by_stage1 = {}, {}, {}
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
        leads[str(path)] = stage1_lead_on_ratings(results)
        for checkpoint, lead in stage1_leads_by_checkpoint(results).items():
            by_stage1.setdefault(checkpoint, {})[str(path)] = lead
    if args.json:
        print(json.dumps(as_json(runs, leads, by_stage1), indent=1))
    elif len(runs) == 1:
        print(table(next(iter(runs.values()))))
    else:
        print(across(runs))
        if pooled := stage1_pooled(leads):
            print(pooled)
        if each := each_stage1_pooled(by_stage1):
            print(each)


def pooled_rows(runs: dict[str, list[dict]]) -> list[dict]:
    """Per target: how many of the runs that measured it met it, and the mean margin over them
    with its 95% t interval (`over_runs`; None for fewer than two)."""
    names = list(runs)
    pooled = []
    for i, first in enumerate(runs[names[0]]):
        measured = [runs[name][i] for name in names if runs[name][i]["met"] is not None]
        pooled.append(
            {
                "target": first["target"],
                "text": first["text"],
                "met": sum(row["met"] for row in measured),
                "measured": len(measured),
                "mean_margin": over_runs([row["margin"] for row in measured]),
            }
        )
    return pooled


def as_json(
    runs: dict[str, list[dict]],
    leads: dict[str, float | None],
    by_stage1: dict[str, dict[str, float]] | None = None,
) -> dict:
    """What the tables say, for a program: each run's rows, the rows pooled over the runs, and
    stage 1's lead on ratings alone per run and pooled over the runs that measured it, for the
    stage 1s' mean and for each stage-1 checkpoint alone (`by_stage1`)."""
    measured = [lead for lead in leads.values() if lead is not None]
    each = {
        checkpoint: {"per_run": per_run, "pooled": over_runs(list(per_run.values()))}
        for checkpoint, per_run in (by_stage1 or {}).items()
    }
    return {
        "runs": runs,
        "pooled": pooled_rows(runs),
        "stage1_on_ratings": {
            "per_run": leads,
            "pooled": over_runs(measured),
            "by_stage1": each,
        },
    }


def across(runs: dict[str, list[dict]]) -> str:
    """One row per target, one column per run (its margin, starred where missed), how many of
    the runs that measured it met it, and the mean margin over them with its 95% t interval."""
    names = list(runs)
    lines = [
        "| target | "
        + " | ".join(f"run {i + 1}" for i in range(len(names)))
        + " | met in | mean margin [95%] |",
        "|---|" + "---|" * (len(names) + 2),
    ]
    for i, pooled in enumerate(pooled_rows(runs)):
        cells = [
            "n/a" if row["met"] is None else f"{row['margin']:+.4f}" + ("" if row["met"] else " *")
            for row in (runs[name][i] for name in names)
        ]
        count = f"{pooled['met']} of {pooled['measured']}"
        mean = "" if pooled["mean_margin"] is None else _interval(pooled["mean_margin"])
        lines.append(f"| {pooled['text']} | " + " | ".join(cells) + f" | {count} | {mean} |")
    lines.append(
        "\nMargins: each run's figure minus its bar (* missed); for the run's time, the minutes"
        " left; for half the annotator's error, the share of turns kept beyond half. The mean"
        " margin's interval is over the runs (draws share their data: it is over what a draw"
        " changes, not over other data). Runs:"
    )
    lines += [f"{i + 1}. {name}" for i, name in enumerate(names)]
    return "\n".join(lines)


def stage1_pooled(leads: dict[str, float | None]) -> str | None:
    """Stage 1 where ratings are the only labels, over the runs that measured it: each run's
    stage-1 arms' mean AP less its fresh arms' (`--uss-ratings-only` with its next seed), and
    their mean with its 95% t interval. One run's row judges one stage 1 against one seed; a
    lead that holds over draws shows here. None for fewer than two such runs."""
    measured = {path: lead for path, lead in leads.items() if lead is not None}
    pooled = over_runs(list(measured.values()))
    if pooled is None:
        return None
    low = pooled["ci95"][0]
    verdict = "above zero" if low > 0 else "not shown above zero"
    each = ", ".join(f"{lead:+.4f}" for lead in measured.values())
    return (
        f"\nStage 1 where ratings are the only labels, over the {pooled['runs']} runs that "
        f"measured it (the stage-1 arms' mean AP less the fresh arms'): {each}; mean "
        f"{_interval(pooled)}, {verdict}."
    )


def each_stage1_pooled(by_stage1: dict[str, dict[str, float]]) -> str | None:
    """Each stage-1 checkpoint alone, over the runs whose arm started from it: its AP less the
    run's fresh arms' mean, pooled as `stage1_pooled` pools the stage 1s' mean. The mean can
    hold over draws while one stage 1 alone is not shown (session 56). None where no
    checkpoint was measured in two runs."""
    lines = []
    for checkpoint, per_run in by_stage1.items():
        if (pooled := over_runs(list(per_run.values()))) is None:
            continue
        verdict = "above zero" if pooled["ci95"][0] > 0 else "not shown above zero"
        lines.append(f"- {checkpoint}, {pooled['runs']} runs: {_interval(pooled)}, {verdict}")
    if not lines:
        return None
    return "\nEach stage 1 alone (its arm's AP less the fresh arms' mean):\n" + "\n".join(lines)


def _interval(pooled: dict) -> str:
    low, high = pooled["ci95"]
    return f"{pooled['mean']:+.4f} [{low:+.4f}, {high:+.4f}]"


if __name__ == "__main__":
    main()
