"""The one `labelgen` command.

Subcommands import what they need when they run, so `labelgen --help` stays fast. Errors a
user can fix (a missing path, an unknown format, an unwritable output, a full disk) end in one
line on stderr and exit code 2; they never end in a traceback. `label` has two more: 3 when
--max-reject-fraction stopped it, 4 when another job holds the output directory.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

FORMATS = ("auto", "canonical", "sgd", "uss")
EXIT_USAGE = 2
EXIT_REJECTS = 3
EXIT_LOCKED = 4


class UsageError(Exception):
    """A problem with the command's inputs or outputs, reported as one line."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _cmd_inspect(args: argparse.Namespace) -> dict:
    from labelgen.data.summary import LogSummary

    summary = LogSummary()
    _stream(args.path, args.format, args.rejects, on_dialogue=None, summary=summary)
    print(summary.render())
    return summary.to_json_dict()


def _cmd_convert(args: argparse.Namespace) -> dict:
    from labelgen.data.canonical import CanonicalWriter
    from labelgen.data.summary import LogSummary

    rejects = args.rejects or Path(f"{args.out}.rejects.jsonl")
    summary = LogSummary()
    with CanonicalWriter(args.out) as writer:
        _stream(args.path, args.format, rejects, on_dialogue=writer.write, summary=summary)
    print(summary.render())
    print(
        f"wrote {summary.dialogues} dialogues to {args.out}, {summary.rejected} rejects to "
        f"{rejects}"
    )
    return {**summary.to_json_dict(), "out": str(args.out), "rejects_file": str(rejects)}


def _stream(path, fmt, rejects_path, on_dialogue, summary) -> None:
    """Read a log once: count everything, hand dialogues on, keep every reject."""
    from labelgen.data.readers import read_log
    from labelgen.data.rejects import Reject, RejectWriter

    with RejectWriter(rejects_path) if rejects_path else nullcontext() as writer:
        for item in read_log(path, fmt):
            summary.add(item)
            if isinstance(item, Reject):
                if writer is not None:
                    writer.write(item)
            elif on_dialogue is not None:
                on_dialogue(item)


def _cmd_synth(args: argparse.Namespace) -> dict:
    from labelgen.data.synth import SynthConfig, synth_to_file

    try:
        config = SynthConfig(annotators=args.annotators, annotator_noise=args.annotator_noise)
        if args.dialogues < 0:
            raise ValueError(f"--dialogues must be >= 0, got {args.dialogues}")
    except ValueError as err:
        raise UsageError(str(err)) from err
    count = synth_to_file(args.out, args.dialogues, args.seed, config)
    print(f"wrote {count} synthetic dialogues (seed {args.seed}) to {args.out}")
    return {"dialogues": count, "seed": args.seed, "out": str(args.out)}


def _cmd_demo(args: argparse.Namespace) -> dict:
    from labelgen.demo import OUT, run_demo, summary

    result = run_demo(args.dialogues, args.seed)
    table, rows = summary(result["report"])
    print(
        f"\nlabelgen demo: model vs a single annotator, against the consensus of the others "
        f"(held-out synthetic log, {result['seconds']:.0f} s)"
    )
    print(table)
    print(f"metrics, calibration and plots in {OUT / 'eval'}; labels in {OUT / 'labels-test'}")
    return {"tasks": rows, "seconds": round(result["seconds"], 1), "out": str(OUT)}


def _cmd_export(args: argparse.Namespace) -> dict:
    from labelgen.models.card import read_benchmarks
    from labelgen.models.export import ExportError, export_model

    try:
        benchmarks = read_benchmarks(args.benchmark)
        out = export_model(
            args.checkpoint, args.out, overwrite=args.overwrite, benchmarks=benchmarks
        )
    except (ExportError, FileExistsError, FileNotFoundError, ValueError) as err:
        raise UsageError(str(err)) from err
    print(f"exported {args.checkpoint} to {out}")
    return {"out": str(out), "files": sorted(p.name for p in Path(out).iterdir())}


def _decisions(args: argparse.Namespace) -> dict[str, Any]:
    """`_add_decisions`' options as `LabelJob` fields: the command line over the file."""
    from labelgen.labeling.label import parse_thresholds, read_cutoff, read_rating_weights

    return {
        "thresholds": parse_thresholds(args.threshold, args.calibration),
        "dissatisfaction_cutoff": (
            args.dissatisfaction_cutoff or read_cutoff(args.calibration) or 0.5
        ),
        "rating_weights": read_rating_weights(args.calibration),
    }


def _cmd_label(args: argparse.Namespace) -> dict | None:
    from labelgen.labeling.lock import OutputLocked, launches_job, refuse_if_held

    try:
        if launches_job():  # the job's other ranks run under its lock
            refuse_if_held(args.output)
    except OutputLocked as err:
        raise UsageError(str(err), EXIT_LOCKED) from err
    from labelgen.labeling.label import LabelJob, OutputMismatch, run_label

    try:
        job = LabelJob(
            model=str(args.model),
            ensemble=[str(m) for m in args.ensemble],
            input=str(args.input),
            output=str(args.output),
            format=args.format,
            **_decisions(args),
            shard_size=args.shard_size,
            batch_size=args.batch_size,
            audio_root=args.audio_root,
            accelerator=args.accelerator,
            devices=args.devices,
            num_nodes=args.num_nodes,
            strategy=args.strategy,
            num_workers=args.num_workers,
            threads=args.threads,
            precision=args.precision,
            max_reject_fraction=args.max_reject_fraction,
            encoder_memo_mb=args.encoder_memo_mb,
        )
    except (ValueError, OSError, KeyError) as err:
        raise UsageError(str(err)) from err
    from labelgen.models.hub import is_repo_id

    for model in (args.model, *args.ensemble):
        if not Path(model).exists() and not is_repo_id(str(model)):
            raise UsageError(f"{model} does not exist (nor is it a hub repository id, org/name)")
    from labelgen.labeling.shards import RejectLimitExceeded
    from labelgen.models.ensemble import EnsembleError
    from labelgen.models.export import ExportError

    try:
        result = run_label(job)
    except (EnsembleError, ExportError, FileNotFoundError, OutputMismatch) as err:
        raise UsageError(str(err)) from err
    except RejectLimitExceeded as err:
        raise UsageError(str(err), EXIT_REJECTS) from err
    except OutputLocked as err:
        raise UsageError(str(err), EXIT_LOCKED) from err
    if result is not None:
        share = ", ".join(f"{t} {v:.0%}" for t, v in result["auto_labeled_share"].items())
        print(
            f"labeled {result['dialogues']} dialogues ({result['turns']} turns), rejected "
            f"{result['rejected']}, into {args.output}; auto-labeled: {share}"
        )
    return result


def _cmd_recalibrate(args: argparse.Namespace) -> dict:
    from labelgen.labeling.recalibrate import recalibrate

    try:
        manifest = recalibrate(
            args.labels,
            args.output,
            **_decisions(args),
        )
    except (ValueError, OSError, KeyError) as err:
        raise UsageError(str(err)) from err
    share = ", ".join(f"{t} {v:.0%}" for t, v in manifest["auto_labeled_share"].items())
    print(
        f"decided {manifest['turns']} turns of {args.labels} again into {args.output} "
        f"(dissatisfaction cutoff {manifest['dissatisfaction_cutoff']:g}); auto-labeled: {share}"
    )
    return manifest


def _cmd_evaluate(args: argparse.Namespace) -> dict:
    from labelgen.evaluation.evaluate import evaluate, human_baseline, render

    if args.predictions is None:
        report = human_baseline(
            args.reference, args.format, seed=args.seed, consensus=args.consensus
        )
    else:
        if not args.predictions.is_dir():
            raise UsageError(f"{args.predictions} is not a directory of labelgen label output")
        report = evaluate(
            args.predictions,
            args.reference,
            args.format,
            out_dir=args.out,
            seed=args.seed,
            target_precision=args.target_precision,
            consensus=args.consensus,
            cutoff_rule=args.cutoff_rule,
            rating_rule=args.rating_rule,
        )
    print(render(report))
    if args.predictions is not None:
        print(f"metrics, calibration and plots in {args.out}")
        if args.wandb:
            from labelgen.evaluation.wandb_log import log_report

            print(f"logged to W&B: {log_report(report, args.out)}")
    return {k: report[k] for k in ("reference", "headline", "calibration") if k in report}


REVIEW_TASKS = "intent,slots,segment,satisfaction"


def _cmd_review_export(args: argparse.Namespace) -> dict:
    from labelgen.review.export import ExportError, export_tasks

    if args.out.suffix != ".json":
        raise UsageError(f"{args.out}: Label Studio imports tasks from a .json file")
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    try:
        result = export_tasks(
            args.labels, args.log, args.out, args.config_out, tasks, args.format, args.model
        )
    except (ExportError, FileNotFoundError) as err:
        raise UsageError(str(err)) from err
    reviewed = ", ".join(f"{t} {n}" for t, n in result["review_turns"].items()) or "none"
    print(
        f"wrote {result['tasks']} Label Studio tasks from {result['dialogues']} dialogues to "
        f"{result['out']} ({result['context_turns']} of them context for segment review); "
        f"turns flagged for review: {reviewed}"
    )
    print(f"labeling config (paste into the project's Labeling Interface): {result['config']}")
    skipped = {
        "turns flagged only for tasks not exported": result["not_exported_turns"],
        "dialogues with labels that are not in the log": result["dialogues_missing_from_log"],
        "dialogues whose labels do not match the log's turns": result["dialogues_mismatched"],
        "log records rejected": result["log_rejected"],
    }
    for what, n in skipped.items():
        if n:
            print(f"not exported: {n} {what}")
    return result


def _cmd_review_import(args: argparse.Namespace) -> dict:
    from labelgen.review.ingest import ImportFormatError, import_annotations

    try:
        result = import_annotations(
            args.export, args.log, args.out, args.rejects, args.config, args.format
        )
    except (ImportFormatError, FileNotFoundError) as err:
        raise UsageError(str(err)) from err
    print(
        f"imported {result['annotations']} annotations by {len(result['annotators'])} "
        f"annotators onto {result['turns']} turns of {result['dialogues']} dialogues; "
        f"{result['cancelled']} skipped (cancelled), {result['unannotated_tasks']} tasks not "
        f"annotated, {result['rejected']} rejected"
    )
    print(
        f"wrote {result['dialogues_written']} dialogues to {result['out']}, "
        f"{result['rejected'] + result['log_rejected']} rejects to {result['rejects_file']}"
        + (f" ({result['log_rejected']} from the log itself)" if result["log_rejected"] else "")
    )
    return result


def _add_decisions(p: argparse.ArgumentParser) -> None:
    """How `label` and `recalibrate` turn probabilities into labels."""
    p.add_argument(
        "--threshold",
        action="append",
        default=[],
        metavar="TASK=P",
        help="send labels below P to human review (repeatable)",
    )
    p.add_argument(
        "--calibration",
        help="thresholds, decision cutoffs and rating weights from `labelgen evaluate`",
    )
    p.add_argument(
        "--dissatisfaction-cutoff",
        type=float,
        help="dissatisfied when P(rating <= 2) is above this (default: the calibration's, "
        "else 0.5)",
    )


def build_parser() -> argparse.ArgumentParser:
    from labelgen import __version__

    parser = argparse.ArgumentParser(
        prog="labelgen",
        description="Ground-truth labels for dialogue logs from user feedback.",
    )
    parser.add_argument("--version", action="version", version=f"labelgen {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, what in (
        ("fit", "train a model"),
        ("validate", "score a model on validation data"),
        ("test", "score a model on test data"),
    ):
        sub.add_parser(name, help=f"{what} (LightningCLI: labelgen {name} --help)", add_help=False)

    p = sub.add_parser("inspect", help="summarize a log and count its labels")
    p.add_argument("path", type=Path)
    p.add_argument("--format", choices=FORMATS, default="auto")
    p.add_argument("--rejects", type=Path, help="write rejected records here (JSONL)")
    p.set_defaults(run=_cmd_inspect)

    p = sub.add_parser("convert", help="write a log in the canonical form")
    p.add_argument("path", type=Path)
    p.add_argument("--format", choices=FORMATS, default="auto")
    p.add_argument("--out", type=Path, required=True, help=".jsonl, .jsonl.gz or .parquet")
    p.add_argument("--rejects", type=Path, help="default: OUT.rejects.jsonl")
    p.set_defaults(run=_cmd_convert)

    p = sub.add_parser("synth", help="generate a synthetic log (the built-in default data)")
    p.add_argument("--dialogues", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True, help=".jsonl, .jsonl.gz or .parquet")
    p.add_argument("--annotators", type=int, default=3)
    p.add_argument("--annotator-noise", type=float, default=0.15)
    p.set_defaults(run=_cmd_synth)

    p = sub.add_parser("label", help="label a log with a trained model (Parquet shards)")
    p.add_argument("--model", type=Path, required=True, help="exported directory or .ckpt")
    p.add_argument(
        "--ensemble",
        type=Path,
        action="append",
        default=[],
        metavar="MODEL",
        help="another model (trained on the same log's features) whose probabilities are "
        "averaged with --model's (repeatable)",
    )
    p.add_argument(
        "--encoder-memo-mb",
        type=int,
        default=0,
        metavar="MB",
        help="keep each batch's frozen-encoder states up to this many MB, so that --ensemble "
        "members with the same frozen encoder encode every batch once (the labels are the "
        "same; default 0: each member encodes it)",
    )
    p.add_argument("--input", type=Path, required=True)
    p.add_argument("--format", choices=FORMATS, default="auto")
    p.add_argument("--output", type=Path, required=True)
    _add_decisions(p)
    p.add_argument("--shard-size", type=int, default=512)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--audio-root")
    p.add_argument("--accelerator", default="auto")
    p.add_argument("--devices", default="1")
    p.add_argument("--num-nodes", type=int, default=1)
    p.add_argument("--strategy", default="auto")
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="CPU threads per process")
    p.add_argument(
        "--precision", help="Lightning precision, e.g. bf16-mixed on GPUs (default: 32-true)"
    )
    p.add_argument(
        "--max-reject-fraction",
        type=float,
        metavar="F",
        help="stop with exit code 3 once more than this share of the input records in the "
        "shards done is rejected (default: never)",
    )
    p.set_defaults(run=_cmd_label)

    p = sub.add_parser(
        "recalibrate",
        help="decide labels again under another calibration, without the model",
        description="Writes what `labelgen label` with these --calibration, --threshold and "
        "--dissatisfaction-cutoff would have written, from its output under other settings: "
        "the dissatisfaction side and 1-5 rating from the kept rating probabilities, and the "
        "labels sent to review from their confidences.",
    )
    p.add_argument("--labels", type=Path, required=True, help="complete `labelgen label` output")
    p.add_argument("--output", type=Path, required=True, help="a new (or empty) directory")
    _add_decisions(p)
    p.set_defaults(run=_cmd_recalibrate)

    p = sub.add_parser("evaluate", help="score labels against annotators and a single annotator")
    p.add_argument(
        "--predictions",
        type=Path,
        help="`labelgen label` output; omit for the single-annotator baseline alone",
    )
    p.add_argument("--reference", type=Path, required=True, help="the annotated log")
    p.add_argument("--format", choices=FORMATS, default="auto")
    p.add_argument("--out", type=Path, default=Path("runs/evaluation"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--target-precision",
        type=float,
        default=0.95,
        help="calibrated threshold where no human baseline exists",
    )
    p.add_argument(
        "--consensus",
        choices=["majority", "dawid-skene"],
        default="majority",
        help="how the other annotators' labels become gold",
    )
    p.add_argument(
        "--cutoff-rule",
        # `dissatisfaction.CUTOFF_RULES`, spelled out so that the parser imports nothing heavy
        # (tests/test_cli.py checks the two agree)
        choices=["f1", "f1-at-annotator-accuracy", "f1-bagged", "f1-at-annotator-accuracy-bagged"],
        default="f1",
        help="calibration.json's dissatisfaction cutoff: best F1 on these items, or best F1 "
        "among cutoffs at least as accurate as the single annotator here; '-bagged': the "
        "median of that cutoff over resamples of the dialogues",
    )
    p.add_argument(
        "--rating-rule",
        # `rating_decision.RATING_RULES` (tests/test_cli.py checks the two agree)
        choices=["shared", "per-side"],
        default="shared",
        help="calibration.json's 1-5 rating weights: share^-a with one power a of best mean "
        "UAR and kappa, or one for each side of the dissatisfaction cutoff (session 44: not "
        "better on two fresh draws, and lower kappa where the weights transfer)",
    )
    p.add_argument(
        "--wandb",
        action="store_true",
        help="log metrics and plots to a W&B run (offline unless WANDB_MODE is set)",
    )
    p.set_defaults(run=_cmd_evaluate)

    p = sub.add_parser("export", help="a checkpoint as a self-contained model directory")
    p.add_argument("checkpoint", type=Path, help="a Lightning .ckpt")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--overwrite", action="store_true")
    p.add_argument(
        "--benchmark",
        type=Path,
        help="a benchmark's results JSON (scripts/benchmark_quality.py) for the model card",
    )
    p.set_defaults(run=_cmd_export)

    p = sub.add_parser("review", help="send labels under threshold to Label Studio and back")
    review = p.add_subparsers(dest="step", required=True, metavar="STEP")
    p = review.add_parser("export", help="turns to review as pre-annotated Label Studio tasks")
    p.add_argument("--labels", type=Path, required=True, help="`labelgen label` output")
    p.add_argument("--log", type=Path, required=True, help="the log that was labeled")
    p.add_argument("--format", choices=FORMATS, default="auto")
    p.add_argument("--out", type=Path, required=True, help="tasks to import (.json)")
    p.add_argument("--config-out", type=Path, help="labeling config XML (default OUT.config.xml)")
    p.add_argument(
        "--tasks",
        default=REVIEW_TASKS,
        help=f"comma-separated, any of {REVIEW_TASKS} (default: all)",
    )
    p.add_argument("--model", type=Path, help="exported model: offer all its intents and slots")
    p.set_defaults(run=_cmd_review_export)
    p = review.add_parser("import", help="a Label Studio JSON export as per-annotator labels")
    p.add_argument("--export", type=Path, required=True, help="Label Studio JSON export")
    p.add_argument("--log", type=Path, required=True, help="the log the tasks came from")
    p.add_argument("--format", choices=FORMATS, default="auto")
    p.add_argument("--out", type=Path, required=True, help=".jsonl, .jsonl.gz or .parquet")
    p.add_argument("--rejects", type=Path, help="default: OUT.rejects.jsonl")
    p.add_argument(
        "--config", type=Path, help="the project's labeling config: reject other intents/slots"
    )
    p.set_defaults(run=_cmd_review_import)

    p = sub.add_parser("demo", help="synthesize, train, label and evaluate (runs/demo)")
    p.add_argument("--dialogues", type=int, default=800, help="training dialogues")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=_cmd_demo)
    return parser


def _setup_logging() -> None:
    # labelgen's own messages (rejected records, weights loaded, audio failures) on stderr.
    logger = logging.getLogger("labelgen")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("labelgen: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    _setup_logging()
    if argv and argv[0] in ("fit", "validate", "test"):
        # Training is LightningCLI's: typed configs, --print_config, the saved config per run.
        from labelgen.training import run

        return run(argv)
    args = build_parser().parse_args(argv)
    from labelgen.data.rejects import LogReadError

    try:
        result = args.run(args)
    except (LogReadError, UsageError) as err:
        print(f"labelgen {args.command}: error: {err}", file=sys.stderr)
        return getattr(err, "exit_code", EXIT_USAGE)
    except OSError as err:
        # Unwritable output, disk full: the writers have already discarded partial files.
        where = f" ({err.filename})" if err.filename else ""
        print(f"labelgen {args.command}: error: {err.strerror or err}{where}", file=sys.stderr)
        return EXIT_USAGE
    # The last stdout line is machine-readable, for scripts and tests (rank 0 only).
    if result is not None:
        print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
