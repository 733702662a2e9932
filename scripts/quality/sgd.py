"""The SGD half of the quality benchmark: stage 1, the two context arms and the no-context
baseline, the model chosen on held-out training dialogues, scored on dev by seen and unseen
services."""

from __future__ import annotations

import argparse
import math
import random
import sys
from pathlib import Path
from typing import Any

import torch

from labelgen.data.schema import Dialogue
from quality.names import SGD_HEADLINES, headline_mean
from quality.pieces import label_in_pieces, piece_size, write_pieces
from quality.pool import Job, map_side_by_side, train_all
from quality.runs import (
    BASELINES,
    CANDIDATES,
    NEXT_SEED,
    SGD_ARMS,
    Model,
    baseline_folder,
    data_module,
    headline,
    label,
    read,
    rejects_file,
    satisfaction_starts,
    score,
    sgd_folder,
    warm_cache,
    write_log,
)
from quality.scarce import (
    scarce_jobs,
    scarce_samples,
    scarce_seeds,
    scarce_summary,
    stage1_name,
)

SGD_TASKS = {"intent": 1.0, "slots": 1.0, "segment": 1.0, "goal_success": 1.0, "rejection": 0.2}
SGD_HEADLINES_ON_VAL = {
    "intent_accuracy": "val/intent_acc",
    "intent_macro_f1": "val/intent_f1",
    "slot_span_f1": "val/slots_token_f1",
    "boundary_f1": "val/segment_f1",
    "goal_success_macro_f1": "val/goal_success_f1",
}
"""Each headline figure's nearest kin that a model reads on its held-out dialogues at every
validation, undecoded: per token for slot spans (macro F1 over the BIO tags), per turn for
boundaries (the B/I/O segment tags). Their mean chooses the epochs of the models on scarce
labels (`--scarce-choose heads`)."""


def sgd(args: argparse.Namespace) -> dict[str, Any]:
    out = args.out / "sgd"
    # stage 1's extra dialogues are drawn last, from what the test and the held-out draws
    # left: however many it asks for (all of them), those two stay the same dialogues. The
    # empty first draw keeps their seeds, and so their dialogues, those of sessions 14-26
    train_dialogues, _, reserved, held_out, unlabeled = read(
        args.sgd_train,
        "sgd",
        args.sgd_train_limit,
        args.seed,
        (0, args.sgd_train_test or 0, args.sgd_val or 0, _extra(args.sgd_pretrain_extra)),
        rejects=rejects_file(args, "sgd-train"),
    )
    random.Random(args.seed).shuffle(train_dialogues)
    if not held_out:  # no draw (the training directory read whole, or --sgd-val 0)
        cut = max(1, len(train_dialogues) // 10)
        held_out, train_dialogues = train_dialogues[:cut], train_dialogues[cut:]
    alone = getattr(args, "only", None) == "stage1"
    # read before anything is encoded, so a bad --sgd-dev stops the run at once; stage 1
    # alone scores nothing on SGD dev, so it does not read it
    dev: list[Dialogue] = []
    if not alone:
        dev = read(
            args.sgd_dev,
            "sgd",
            args.sgd_dev_limit,
            args.seed,
            rejects=rejects_file(args, "sgd-dev"),
        )[0]
    # Every model's epoch and the choice of arm come from held-out training dialogues: a draw
    # of their own (--sgd-val), as large as the budget allows, since a choice made on few
    # dialogues follows their noise (session 14: the arms' means on 200 differed by 0.0007, and
    # 8 failed goals decided it)
    train_log = write_log(train_dialogues, out / "train.parquet")
    val_log = write_log(held_out, out / "val.parquet")
    pretrain_log = train_log
    if unlabeled:
        pretrain_log = write_log(train_dialogues + unlabeled, out / "pretrain.parquet")
        if args.warm_cache:
            # the fine-tuning logs first, in their own batches, as without the extra
            # dialogues: they change stage 1 alone, not the states the other models read
            warm_cache([train_log, val_log], args)
    stage1_start = {"init_lr": args.stage1_init_lr, "init_shrink": args.stage1_shrink}
    if args.stage1_tagger_shrink is not None:
        stage1_start["init_shrink_by"] = {"slot_head.": args.stage1_tagger_shrink}
    jobs = {
        "pretrain": Job(
            out / "pretrain",
            pretrain_log,
            val_log,
            {"defect": 1.0} | ({"echo": args.stage1_echo} if args.stage1_echo else {}),
            {
                "corrupt": True,
                "epochs": args.pretrain_epochs,
                "encoder_lr": args.pretrain_encoder_lr,
                "order_cycle": args.pretrain_cycle,
            },
        ),
        "with_pretraining": Job(
            out / SGD_ARMS["with_pretraining"],
            train_log,
            val_log,
            SGD_TASKS,
            stage1_start,
            after="pretrain",
        ),
        "no_pretraining": Job(out / SGD_ARMS["no_pretraining"], train_log, val_log, SGD_TASKS),
    }
    if alone:
        # stage 1 alone, e.g. on every training dialogue (--sgd-pretrain-extra all): a start
        # for `--only ratings --uss-stage1` draws, trained once, outside their time (the
        # checkpoints of sessions 53-57's draws were trained this way by scratch scripts)
        pre = train_all({"pretrain": jobs["pretrain"]}, args)["pretrain"]
        return {
            "regime": args.regime,
            "held_out_training_dialogues": len(held_out),
            "pretrain_dialogues": len(train_dialogues) + len(unlabeled),
            "stage1": stage1_learned(pre, pretrain_log, val_log, args),
        }
    services = {t.domain for d in train_dialogues for t in d.turns}

    def is_seen(dialogue: Dialogue) -> bool:
        return {t.domain for t in dialogue.turns} <= services

    seen = [d for d in dev if is_seen(d)]
    unseen = [d for d in dev if d not in seen]
    # SGD dev's seen services hold almost no failed goals (none of 1,473 in the files here), so
    # goal success on seen services is also scored on training dialogues of those services
    # that no model trains, pretrains or chooses anything on (about 2% of their goals failed)
    train_test = [d for d in reserved if is_seen(d)]
    logs = {
        "seen": write_log(seen, out / "dev-seen.parquet"),
        "unseen": write_log(unseen, out / "dev-unseen.parquet"),
    }
    if train_test:
        logs["train-test"] = write_log(train_test, out / "train-test.parquet")
    baselines_jobs = {
        name: Job(
            out / baseline_folder(name, args),
            *(train_log, val_log, SGD_TASKS),
            {"context": False, "pool_sides": pool_sides},
        )
        for name, pool_sides in BASELINES.items()
        if args.choose_baseline_pooling or pool_sides == args.pool_sides
    }
    first_baseline, *other_baselines = baselines_jobs
    jobs[first_baseline] = baselines_jobs[first_baseline]
    if args.second_seed:
        # the arm without stage 1 again, from the next seed (every model trains on a cache
        # filled before it, so its place in the order changes no model)
        jobs[NEXT_SEED] = Job(
            out / sgd_folder(NEXT_SEED, args.seed),
            *(train_log, val_log, SGD_TASKS),
            {"seed": args.seed + 1},
        )
    # The order packs two processes (`--train-jobs 2`, session 26): the one that runs stage 1
    # and the arm from it takes the twin next, while the other trains the arm without stage
    # 1 and the two baselines, a few minutes shorter each; in the order of the dict above,
    # the twin trained alone at the end, on one core, for about 4 minutes.
    jobs.update({name: baselines_jobs[name] for name in other_baselines})
    # the small models last: they fill the two processes' ends (the scarce samples' turns
    # are in the cache already, so they change no state the other models read); each pair
    # of them labels its own share of the training sample (shuffled above: a random share)
    samples = scarce_samples(train_dialogues, args.sgd_scarce or 0, args.sgd_scarce_pairs)
    few_labels: dict[str, Job] = {}
    picked = held_out  # the held-out dialogues that choose the scarce models' epochs
    if args.sgd_scarce and train_dialogues:
        scarce_logs = [
            write_log(sample, out / f"scarce-seed{seed}.parquet")
            for seed, sample in zip(scarce_seeds(args), samples, strict=True)
        ]
        # a random share of the held-out dialogues (they are in file order, which groups
        # services), as small as the sample: each of these models validates every epoch,
        # which on all 600 was about half of its 88 s (session 30; 57-61 s on 200)
        scarce_val = val_log
        if args.sgd_scarce_val and args.sgd_scarce_val < len(held_out):
            share = random.Random(args.seed).sample(range(len(held_out)), args.sgd_scarce_val)
            picked = [held_out[i] for i in sorted(share)]
            scarce_val = write_log(picked, out / "scarce-val.parquet")
        start = {**stage1_start, "init_shrink": args.scarce_stage1_shrink}
        few_labels = scarce_jobs(
            scarce_logs,
            scarce_val,
            SGD_TASKS,
            jobs["pretrain"],
            start,
            list(SGD_HEADLINES_ON_VAL.values()),
            out,
            args,
        )
    trained = train_all(jobs | few_labels, args)
    pre = trained.pop("pretrain")
    baselines = {name: trained.pop(name) for name in BASELINES if name in trained}
    # the stage 1 each scarce pair started from (its own with --scarce-stage1 per-pair, pair
    # 0's the run's), and the pairs' models
    stage1_by_seed: dict[int, Path] = {}
    for seed in scarce_seeds(args) if few_labels else []:
        name = stage1_name(seed, args)
        stage1_by_seed[seed] = pre if name == "pretrain" else trained.pop(name)
    # the scarce models: every job of `few_labels` but the stage 1s taken just above
    scarce = {name: trained.pop(name) for name in few_labels if name in trained}
    models: dict[str, Path] = trained  # the context arms, and the next seed's twin
    # scored alone beside the candidates, never chosen: how far a seed alone moves a model
    controls: dict[str, Model] = {NEXT_SEED: models[NEXT_SEED]} if NEXT_SEED in models else {}
    # Stage 1 is a choice like any other hyperparameter: "the model" is the candidate that
    # scores best on the held-out training dialogues (never on dev): either context arm, the
    # two arms' mean probabilities (errors of models from other starting points are partly
    # independent), or the arm without stage 1 averaged with its twin from the next seed (the
    # same without stage 1); every candidate is reported, so stage 1's effect stays visible.
    candidates: dict[str, Model] = {}
    for name, members in CANDIDATES.items():
        if all(member in models for member in members):  # the twin only with --second-seed
            checkpoints = [models[member] for member in members]
            candidates[name] = checkpoints if len(checkpoints) > 1 else checkpoints[0]

    # every model labels every log at once (side by side with --train-jobs, each piece of a
    # log labeled by every model in one process, so each is encoded once: `quality.pieces`),
    # then scores it: the held-out dialogues that choose the model and the baseline, and each
    # dev split
    scored = {**candidates, **baselines, **controls, **scarce}
    splits = [s for s in logs if s != "unseen" or unseen]
    by_split = {"seen": seen, "unseen": unseen, "train-test": train_test}
    size = piece_size(args.train_jobs)
    pieces = {log: write_pieces(by_split[split], log, size) for split, log in logs.items()}
    pieces[val_log] = write_pieces(held_out, val_log, size)
    # (model, log) -> (the log, where its scores go, whether with plots: where a reader looks,
    # the candidates' and baselines' on dev and the train-test; at ~1.5 s a call, the other 26
    # calls' plots cost the full run about half a minute)
    where = {(name, "val"): (val_log, out / f"val-{name}", False) for name in scored}
    where |= {
        (name, split): (logs[split], out / f"{name}-{split}", name in {**candidates, **baselines})
        for split in splits
        for name in scored
    }
    labels = label_in_pieces(
        {key: (scored[key[0]], pieces[log], _labels(at)) for key, (log, at, _) in where.items()},
        args,
    )
    figures = map_side_by_side(
        sgd_figures,
        {key: (labels[key], log, at, args, plots) for key, (log, at, plots) in where.items()},
        args,
        by_log=False,
        kind="score",
    )

    def on_val(named: dict[str, Model]) -> dict[str, dict[str, float | None]]:
        return {name: figures[name, "val"] for name in named}

    candidates_on_val = on_val(candidates)
    best = max(candidates_on_val, key=lambda name: headline_mean(candidates_on_val[name]))
    controls_on_val = on_val(controls)
    arm = best if args.sgd_model == "choose" else args.sgd_model  # trained: main() checked
    # the baseline gets the choice the model gets: its pooling, by the same rule on the same
    # held-out dialogues
    baselines_on_val = on_val(baselines)
    baseline = max(baselines_on_val, key=lambda name: headline_mean(baselines_on_val[name]))
    # USS training starts from these (SGD's dialogues are USS-SGD's dialogues): from each of
    # the model's members, and from the context arm the model's first member is not, to show
    # what stage 1 does to dissatisfaction
    args.sgd_arm = arm
    starts = satisfaction_starts(arm)
    args.sgd_models = {
        "model": models[starts.pop("model")],
        "baseline": baselines[baseline],
        **{name: models[start] for name, start in starts.items()},
    }
    results: dict[str, Any] = {
        "regime": args.regime,
        "train_dialogues": len(train_dialogues),
        "held_out_training_dialogues": len(held_out),
        "pretrain_dialogues": len(train_dialogues) + len(unlabeled),
        "dev_seen": len(seen),
        "dev_unseen": len(unseen),
        "train_test": len(train_test),
        "model_arm": arm,
        "best_on_held_out_training": best,
        "arms_on_held_out_training": candidates_on_val,
        **({"seed_control_on_held_out_training": controls_on_val} if controls else {}),
        "baseline_arm": baseline,
        "baseline_folder": baseline_folder(baseline, args),
        "baselines_on_held_out_training": baselines_on_val,
        "stage1": stage1_learned(pre, pretrain_log, val_log, args),
        # each model's multi-task loss on the held-out training dialogues at its best epoch: a
        # proper score of every head's probabilities, where the headline figures count only
        # the decisions (session 25: the stage-1 arm's 0.146 against 0.160 and 0.162 without)
        "held_out_loss": {
            name: _loss(checkpoint) for name, checkpoint in {**models, **baselines}.items()
        },
    }
    if scarce:
        results["scarce_labels"] = scarce_summary(
            figures,
            splits,
            {name: _loss(checkpoint) for name, checkpoint in scarce.items()},
            len(samples[0]),
            len(picked),
            headline_mean,
            args,
        )
        results["scarce_labels"]["stage1"] = args.scarce_stage1
        results["scarce_labels"]["epochs_chosen_by"] = args.scarce_choose
        if args.scarce_stage1 == "per-pair":
            # pair 0's is the run's stage 1, read above
            results["scarce_labels"]["stage1_by_seed"] = {
                str(seed): results["stage1"]
                if checkpoint == pre
                else stage1_learned(checkpoint, pretrain_log, val_log, args, seed)
                for seed, checkpoint in stage1_by_seed.items()
            }
    for split in splits:
        for name in {**candidates, **baselines, **controls}:
            results[f"{name}/{split}"] = figures[name, split]
    for split in logs:
        if f"{arm}/{split}" in results:
            results[f"model/{split}"] = results[f"{arm}/{split}"]
            results[f"baseline/{split}"] = results[f"{baseline}/{split}"]
    return results


def stage1_learned(
    checkpoint: Path,
    train_log: Path,
    val_log: Path,
    args: argparse.Namespace,
    seed: int | None = None,
) -> dict[str, Any]:
    """Stage 1's best epoch and validation loss beside the loss of predicting the held-out
    turns' defect base rate alone (its entropy): whether it learned the swaps at all. `seed`:
    the seed stage 1 trained from (default `--seed`), which drew its validation corruptions."""
    epoch, loss = best_epoch(checkpoint)
    dm = data_module(train_log, val_log, args, corrupt=True, seed=seed)
    dm.setup("fit")
    # the held-out turns corrupted as stage 1's validation saw them (seeded per batch)
    targets = torch.cat([batch["defect"].flatten() for batch in dm.val_dataloader()])
    rate = float((targets[targets >= 0] == 1).float().mean())
    return {
        "epoch": epoch,
        "val_loss": loss,
        "base_rate": round(rate, 4),
        "base_rate_loss": round(-sum(p * math.log(p) for p in (rate, 1 - rate) if p > 0), 4),
    }


def best_epoch(checkpoint: Path) -> tuple[int, float]:
    """A model's best epoch and its validation loss there."""
    chosen = _loss(checkpoint)
    return chosen["epoch"], chosen["val_loss"]


def _loss(checkpoint: Path) -> dict[str, Any]:
    """A model's best epoch and its validation loss there; for a model whose epoch a mean of
    held-out figures chose (`train`'s `choose_on`), that mean and its figures beside."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=False, mmap=True)
    callbacks = state["callbacks"]
    mean = [c for key, c in callbacks.items() if key.startswith("MeanOfMetrics")]
    if not mean:  # the loss chose: ModelCheckpoint kept it
        (score,) = [c["best_model_score"] for c in callbacks.values() if "best_model_score" in c]
        return {"epoch": state["epoch"], "val_loss": round(float(score), 4)}
    figures = mean[0]["figures"]
    return {
        "epoch": state["epoch"],
        "val_loss": round(figures["val/loss"], 4),
        "chosen_on": {key: round(figures[key], 4) for key in [*mean[0]["keys"], mean[0]["name"]]},
    }


def sgd_scores(
    checkpoint: Model, log: Path, out: Path, args: argparse.Namespace, plots: bool = True
) -> dict:
    """Labels an SGD log with one model (or an ensemble) and scores it: the headline figures
    (and the plots beside the metrics, with `plots`)."""
    return sgd_figures(label(checkpoint, log, _labels(out)), log, out, args, plots)


def _labels(out: Path) -> Path:
    """Where the labels scored into `out` go."""
    return out.with_name("labels-" + out.name)


def sgd_figures(
    labels: Path, log: Path, out: Path, args: argparse.Namespace, plots: bool = True
) -> dict:
    """Scores an SGD log's labels: the headline figures (and the plots beside the metrics,
    with `plots`)."""
    report = score(
        labels,
        log,
        out_dir=out.with_name("eval-" + out.name),
        seed=args.seed,
        make_plots=plots,
    )
    scores = {key: headline(report, *where) for key, where in SGD_HEADLINES.items()}
    # goal success read on each goal's last turn only (the matching rule until session 22):
    # reported beside, never part of the choice
    scores["goal_success_last_turn_macro_f1"] = headline(
        report, "goal_success", "macro_f1", who="model_last_turn_only"
    )
    return scores


def _extra(n: int | str | None) -> int:
    """`--sgd-pretrain-extra` as a draw's size: "all" asks for more than any log holds."""
    return sys.maxsize if n == "all" else n or 0
