"""Label quality on real dialogues: SGD and USS, model beside the no-context baseline and a
single annotator, in one run on CPU with the packaged pretrained MiniLM (frozen; its states
cached for training, not for labeling).

    python scripts/benchmark_quality.py --quick            # development, ~10 minutes
    python scripts/benchmark_quality.py                    # the full run
    python scripts/benchmark_quality.py --uss-eval CCPE.txt  # and CCPE scored 3 ways, 40-45 min

Everything lands in --out's results.json; the run ends by printing the issue's targets, met,
missed or not measured, with their margins (`quality.targets`; `scripts/quality_targets.py`
reads them off any number of runs).

Models that do not depend on each other train two at a time (`--train-jobs`), each in a process
forked once the frozen cache holds its turns, with one of the two threads: on 2 cores that does
1.46 times the work of one model with both (session 26: 42-44 minutes, 55 one at a time). The
models then label and are scored two at a time too, each log's calls in one process (session
28), which encodes, reads and featurizes the log once (session 32: the labeling a fifth
faster, the same labels; 40 minutes). A log longer than a labeling process's memo holds
(1,024 SGD dialogues with two processes) goes in pieces, each piece's calls in one process
(`quality.pieces`, session 34): on a split the size of SGD's test split, built here by
`scripts/hold_out_services.py`, every model encoded its 3,090 unseen-service dialogues again
(5 minutes a model: about an hour for the eleven), where in pieces the whole labeling took 6.6
minutes, with the same labels.

Stage 1 can also read every SGD training dialogue no other sample holds (`--sgd-pretrain-extra
all`), and the arm from it starts from stage 1's weights shrunk toward fresh ones
(`--stage1-shrink 0.25`): session 27's best single SGD model on the held-out dialogues in
three seeds of three, 12-15 minutes longer, so not the default. Twelve stage-1 epochs on the
fine-tuning sample alone (`--pretrain-epochs 12 --stage1-shrink 0.25`) raised held-out slot
F1 in five seeds of five in session 29, and nothing else; through a full run in session 30,
level with the arm without stage 1, and 7.5 minutes longer.

Where labels are scarce (`--sgd-scarce 200`; the quick run's 60 by default, the full run
none since session 51), both context arms are fine-tuned again on 200 of the training
sample's dialogues, in four pairs (`--sgd-scarce-pairs`), each
pair from its own seed on its own 200 dialogues, the stage-1 arm from a stage 1 of the pair's
seed (`--scarce-stage1 per-pair`, the full run's default; pair 0's is the run's) shrunk to a
quarter (`--scarce-stage1-shrink`), their epochs chosen on 200 of the held-out dialogues
(`--sgd-scarce-val`) by the mean of each headline figure's held-out kin (`--scarce-choose`):
what stage 1 does for a team with a large log and few labels
(`sgd.scarce_labels`: each log's means over the pairs, the difference, each pair's difference
and how many pairs gain, each pair's stage 1; sessions 30-31 and 46-50). In full it costs
about 18 minutes (session 50: 1,862 of the SGD half's 3,788 model-seconds of training, and
the eight models' labeling), and read no gain in any of its designs since session 47, so the
full run leaves it to the flag and stays inside 45 minutes; the arms with and without stage 1
on the whole sample are still trained, chosen between and scored on every log.

Every input is a path option (SGD-format directories, USS-format files), so the same script
scores other data in those formats. Writes `results.json` and the evaluation folders (metrics,
plots) under --out and prints one JSON line with the headline figures. Input records a reader
rejects are kept with their reasons in `rejects/<role>.jsonl` under --out, counted in
results.json (`<half>.inputs`) and named on stderr; an input with no dialogue stops the run.
Every input the run reads is opened before anything else, up to its first dialogue: a missing,
unreadable or empty one stops it at once, not when it is first read (minutes into the run).

SGD: pretrain with response swaps on the training dialogues (the encoder frozen, or trained
with `--pretrain-encoder-lr`), fine-tune multi-task (intent, slots, segmentation, goal success,
rejection feedback) from it, the same without stage 1, the no-context baseline on the same
data and budget (with the turn's sides pooled apart and as one, the one better on the held-out
training dialogues being the baseline: `--choose-baseline-pooling`), and (`--second-seed`, the
default) the arm without stage 1 again from the next seed; each picks its epoch on held-out
training dialogues (`--sgd-val`, a draw of their own).
"The model" is whichever candidate scores best on those held-out training dialogues: either
context arm (with or without stage 1), their ensemble (the mean of the two arms'
probabilities, `labelgen label --ensemble`), or the ensemble of the arm without stage 1 and
its second seed (two models, neither with stage 1: the first ensemble's control); all four are
reported, and the second seed alone beside them. Label the dev dialogues
with each and score them, seen and unseen services apart (a dialogue is "seen" when every
service it touches is in training); and a test drawn from SGD's training split outside every
sample any model reads (`--sgd-train-test`), seen services only: SGD dev's seen services hold
no failed goal here, so goal success on seen services is scored there.
USS: dialogue-level k-fold cross-validation on satisfaction, each fold's model starting from
the SGD model (with an ensemble, one from each member, their probabilities averaged; the baseline
from the SGD baseline; with `--only uss`, those an earlier run left in --out, else untrained)
and learning an attention pooling on top of its mean
(`--uss-pooling`). A fifth of each training fold (a different fifth for each fold's model)
picks its epoch, and the model labels it. The scored fold's dissatisfaction cutoff (best F1
among the cutoffs at least as accurate as the single annotator there, `--cutoff-rule`) and
rating weights (`--rating-rule`) are then chosen on every
fold model's slice pooled, minus the scored fold's dialogues; the scored fold is only labeled.
The out-of-fold labels are scored against the leave-one-annotator-out consensus beside the
single annotator, with the threshold sweep, the
half-human-error point, the ranking (average precision, ROC AUC) and the USS paper's protocol.
The same folds are also trained from the SGD context arm that is not the model's first member:
dissatisfaction with and without stage 1 (`uss.by_sgd_arm`, also each member's). `--uss-eval`
files are labeled by a model trained on the USS training file (its epoch picked on a fifth of
it, its cutoff and rating weights on every fold model's slice), never trained on; again with
the cutoff and weights chosen on the other half of the file's own dialogues
(`in_domain_calibration`); and by the same k-fold protocol on the file's own ratings, each
fold's model fine-tuned from that model (`in_domain_finetuning`), as a user who rates part of
their log would.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch
from quality.names import half_options
from quality.runs import CANDIDATES, INPUTS, MODEL_SECONDS, TIMINGS, TWO_SEEDS, timeline
from quality.sgd import sgd
from quality.targets import table, targets
from quality.uss import ratings_half, uss

from labelgen.data.readers import read_log
from labelgen.data.rejects import LogReadError
from labelgen.data.schema import Dialogue
from labelgen.evaluation.dissatisfaction import CUTOFF_RULES
from labelgen.evaluation.rating_decision import RATING_RULES

LIMITS = {
    # dialogues read, (smoke, quick, full); the full run's 1,800 SGD training dialogues are
    # sized for 45 minutes on 2 CPU cores (with --uss-eval CCPE.txt: 52 in session 15, 49 on
    # a machine as fast in session 16, 34 on session 17's, 42 in session 20 with the second
    # seed; encoding them takes ~5 minutes; 0 = all 12,174 here)
    "sgd_train_limit": (36, 540, 1800),
    # held-out training dialogues, drawn outside that sample, on which every SGD model picks
    # its epoch and the context arm is chosen; 0 = a tenth of the sample (sessions 2-14: 200)
    "sgd_val": (8, 150, 600),
    # stage 1 reads only text, so it can use training dialogues the fine-tuning never sees
    # (as a user pretrains on a large unlabeled log): this many more, 0 = none
    "sgd_pretrain_extra": (0, 0, 0),
    # stage 1 where labels are scarce: both context arms fine-tuned again, in pairs (one seed
    # and sample each), on only this many of the training sample's dialogues; 0 = not
    # (quality.scarce). The full run trains them only when asked (`--sgd-scarce 200`): four
    # pairs from their own stage 1s, 64 epochs each, are about 18 minutes, over the 45
    # (session 50); the quick and smoke runs keep a small one so the path stays exercised
    "sgd_scarce": (12, 60, 0),
    # a random this many of the held-out dialogues pick those models' epochs, as a team
    # with few labels holds few out; every held-out dialogue still scores them
    "sgd_scarce_val": (4, 50, 200),
    "sgd_dev_limit": (20, 200, 0),
    # more training dialogues set aside as a test of seen services with enough failed goals
    # to score goal success (SGD dev's seen services hold none here); 0 = none
    "sgd_train_test": (10, 100, 500),
    "uss_limit": (30, 200, 0),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sgd-train", type=Path, default=Path("../shared/data/sgd/train"))
    parser.add_argument("--sgd-dev", type=Path, default=Path("../shared/data/sgd/dev"))
    parser.add_argument("--uss-train", type=Path, default=Path("../shared/data/uss/SGD.txt"))
    parser.add_argument(
        "--uss-eval",
        type=Path,
        nargs="*",
        default=[],
        help="USS files only evaluated on, e.g. ../shared/data/uss/CCPE.txt",
    )
    parser.add_argument("--out", type=Path, default=Path("runs/benchmark-quality"))
    parser.add_argument("--quick", action="store_true", help="development run, ~10 minutes")
    parser.add_argument("--smoke", action="store_true", help="seconds: checks the plumbing")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--only",
        choices=["sgd", "uss", "ratings", "stage1"],
        help="run one half; the USS half alone starts from the SGD models an earlier run "
        "left in --out. ratings: only --uss-ratings-only's satisfaction models (implied), "
        "which read no SGD label: a draw of stage 1's lead on ratings in a fraction of the "
        "USS half's time, e.g. with --uss-stage1 in an --out of its own. stage1: only the "
        "SGD half's stage 1 (OUT/sgd/pretrain/best.ckpt), e.g. with --sgd-pretrain-extra "
        "all: a checkpoint for such draws' --uss-stage1",
    )
    parser.add_argument(
        "--pooling",
        choices=["mean", "attention"],
        default="mean",
        help="turn vector from the frozen token states: their mean, or a learned weighting",
    )
    parser.add_argument(
        "--pool-sides",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="every model pools the user's and the system's tokens apart (EncoderConfig."
        "pool_sides): the dialogue model sees a request beside its response, not their blend. "
        "The default since session 23: every SGD candidate's held-out mean rose with it and "
        "stage 1 learned the swaps (docs/benchmarks.md); --no-pool-sides trains session 22's",
    )
    parser.add_argument(
        "--choose-baseline-pooling",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="train the no-context baseline with the turn's sides pooled apart and as one, "
        "and take the one better on the held-out training dialogues, by the rule that chooses "
        "the model (both are reported on dev): the baseline pooled as the model lost slot F1 "
        "in session 23. --no-choose-baseline-pooling trains only the one pooled as the model "
        "(session 23's baseline)",
    )
    parser.add_argument(
        "--uss-pooling",
        choices=["mean", "attention"],
        default="attention",
        help="the satisfaction models' pooling (they start from the SGD model; a learned "
        "weighting on top of a mean-pooled one starts as the mean). Attention: best on the "
        "folds' validation slices in session 6 (docs/benchmarks.md)",
    )
    parser.add_argument(
        "--pretrain-epochs",
        type=int,
        help="stage 1's epochs (default: 2 full, 1 quick); in session 7, 10 epochs learned "
        "the swaps better and hurt the fine-tuned model more; in session 29, 12 epochs with "
        "--stage1-shrink 0.25 raised held-out slot F1 in five seeds of five, and nothing "
        "else; in session 30's full run, level with no stage 1 (docs/benchmarks.md)",
    )
    parser.add_argument(
        "--stage1-echo",
        type=float,
        default=0.0,
        help="stage 1 also tags the user words each turn's response repeats (TaskConfig's "
        "echo task, no labels), at this loss weight, with the slot tagger's layers, so they "
        "reach fine-tuning trained (default 0: stage 1 trains no slot layer)",
    )
    parser.add_argument(
        "--stage1-tagger-shrink",
        type=float,
        help="--stage1-shrink (and --scarce-stage1-shrink) for the slot tagger's layers that "
        "stage 1's echo task trained (--stage1-echo); default: as the rest",
    )
    parser.add_argument(
        "--pretrain-cycle",
        type=int,
        default=0,
        help="stage 1's batches, and so its swaps, repeat every this many epochs (0: new "
        "ones every epoch). With the encoder frozen, the swapped turns (the costliest part of "
        "a stage-1 epoch) are encoded in the first cycle only. Session 29: 1.86 times faster "
        "for 12 epochs with a cycle of 3, but the slot gain of 12 epochs went with it",
    )
    parser.add_argument(
        "--pretrain-encoder-lr",
        type=float,
        help="stage 1 also trains the encoder, at this learning rate (fine-tuning keeps the "
        "adapted encoder frozen); default: frozen. In session 8, 1 epoch at 5e-5 moved no "
        "figure outside the seed spread (docs/benchmarks.md)",
    )
    parser.add_argument(
        "--stage1-init-lr",
        type=float,
        help="the arm with stage 1 fine-tunes the weights stage 1 trained at this learning "
        "rate (the new heads at the usual 2e-3); default: 2e-3 too",
    )
    parser.add_argument(
        "--stage1-shrink",
        type=float,
        default=1.0,
        help="the arm with stage 1 starts each weight stage 1 trained at this share of it, "
        "the rest its fresh initialization (OptimConfig.init_shrink; 1 = stage 1's weights). "
        "Session 27: stage 1 on every SGD training dialogue (--sgd-pretrain-extra all) was a "
        "worse start than none, shrunk to 0.25 a better one on the held-out dialogues",
    )
    parser.add_argument(
        "--scarce-stage1-shrink",
        type=float,
        default=0.25,
        help="--stage1-shrink for the arm with stage 1 on the scarce sample (--sgd-scarce). "
        "Session 30's probes, 200 labeled dialogues, on the held-out training dialogues: "
        "0.25 raised the mean of the headline figures in both seeds, 1 in one of two",
    )
    parser.add_argument(
        "--sgd-scarce-pairs",
        type=_count,
        help="pairs of models on scarce labels (--sgd-scarce), both context arms from one "
        "seed on one sample each: seeds --seed, --seed + 1, ...; the k-th share of the "
        "fine-tuning sample (default: 4 full, 2 quick and smoke). Session 46: two pairs on one "
        "sample, as before, read stage 1's slot gain below zero on some log in one pair in "
        "four draws of six",
    )
    parser.add_argument(
        "--scarce-stage1",
        choices=["shared", "per-pair"],
        help="the stage 1 each scarce pair's arm with stage 1 starts from: the run's (shared), "
        "or one from the pair's own seed (per-pair; pair 0's is the run's), which costs a stage "
        "1 for each other pair (default: per-pair full, shared quick and smoke). Session 46: "
        "with one stage 1 the pairs of a draw moved together, every pair losing in one draw "
        "of four",
    )
    parser.add_argument(
        "--scarce-epochs",
        type=_count,
        help="epochs of the models on scarce labels (--sgd-scarce; default: 64 full, the run's "
        "quick and smoke), their held-out loss read as many times as the run's models read "
        "theirs; beyond the run's epochs each stops after 4 reads without a better one. Session "
        "47: in 16 epochs (208 steps on 200 dialogues) they were still learning, slot F1 "
        "0.07-0.24 on the held-out dialogues, best epoch the last or nearly; in 64, seed 0's "
        "read 0.60-0.72, best epochs 23-43",
    )
    parser.add_argument(
        "--scarce-choose",
        choices=["heads", "loss"],
        default="heads",
        help="what chooses the epoch of each model on scarce labels (--sgd-scarce), and stops "
        "it: the mean of its heads' figures on the held-out dialogues, one for each headline "
        "figure, per turn and per token (heads), or the summed multi-task loss (loss, as "
        "before session 48). Session 47, 64 epochs by the loss: two of eight seed-1 models "
        "chose epoch 11, held-out slot F1 0.27 and 0.35 where the others read 0.57-0.72",
    )
    parser.add_argument(
        "--sgd-model",
        choices=["choose", *CANDIDATES],
        default="choose",
        help='the SGD candidate that is "the model" (and whose satisfaction models are): '
        "the one best on the held-out training dialogues (default), or this one",
    )
    parser.add_argument(
        "--second-seed",
        "--seed-control",  # its name in session 19, when the two seeds were only a control
        action=argparse.BooleanOptionalAction,
        default=True,
        help=f"also train the SGD arm without stage 1 from the next seed: scored alone, and "
        f"its two-seed ensemble ({TWO_SEEDS}) is a candidate for the model, the control for "
        "the two context arms' ensemble (is the stage-1 arm a better partner than a second "
        "seed?); about 4 minutes more, 8 when it is the model (its satisfaction models); "
        "the other models are unchanged by it",
    )
    parser.add_argument(
        "--warm-cache",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="before each model trains, encode its logs' turns the frozen cache lacks, in "
        "batches fixed by the logs: no model then trains while the cache fills, which made "
        "the first model of a process train otherwise than the same model after it (session "
        "20), so a model's figures depended on which models trained before it; no measurable "
        "cost in session 21's full run (the encoding moves, it is not added). "
        "--no-warm-cache: trains session 20's models",
    )
    parser.add_argument(
        "--train-jobs",
        type=int,
        default=2,
        help="models that do not depend on each other train side by side in this many "
        "processes, forked once the frozen cache holds their turns, each with an equal share "
        "of torch's threads (2 single-threaded trainings did 1.46 times the work of one "
        "two-threaded training in session 25). A model trained with fewer threads rounds "
        "otherwise, as on another machine. 1: one after another in this process, with every "
        "thread (session 25's models)",
    )
    parser.add_argument(
        "--fused-adamw",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="every model's AdamW runs its fused kernel (OptimConfig.fused): the same update "
        "rounded otherwise, so other models, and on CPU no faster (session 40: 0.997 of the "
        "loop's time, scripts/benchmark_optimizer.py; its full run took 51 minutes and read "
        "other figures, docs/benchmarks.md)",
    )
    parser.add_argument(
        "--uss-other-arm",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also train the satisfaction models from the SGD arm that is not the model, and "
        "report dissatisfaction from both arms (with and without stage 1; ~5 minutes more); "
        "always when the model is the arms' ensemble, whose members they are",
    )
    parser.add_argument(
        "--uss-ratings-only",
        action="store_true",
        help="also train the satisfaction models from no SGD model, fresh and from the SGD "
        "half's stage 1 (the SGD dialogues' text, no label): dissatisfaction with and without "
        "stage 1 where ratings are the only labels (`uss.ratings_only`), and the fresh one "
        "again from the next seed: how far a seed alone moves them (~10 minutes more)",
    )
    parser.add_argument(
        "--uss-stage1",
        type=Path,
        nargs="+",
        metavar="CKPT",
        help="with --uss-ratings-only: the stage-1 checkpoint its arm with stage 1 starts from "
        "(at --stage1-shrink of its weights), e.g. one that read a larger unlabeled log; "
        "each further checkpoint trains one more such arm (stage 1 from other seeds: "
        "`stage1_mean_minus_fresh_mean` then averages them); default: the SGD half's "
        "(sgd/pretrain/best.ckpt in --out)",
    )
    parser.add_argument(
        "--uss-ratings-scarce",
        type=_count,
        help="with --uss-ratings-only: each of its fold models reads only a random this many "
        "of its training dialogues, the same for each arm (the epoch, the calibration and the "
        "scores on the whole folds): stage 1 where ratings are few. Sessions 53-54, 160: stage "
        "1 on every SGD dialogue, shrunk to 0.25, read above no stage 1 in most draws of five "
        "(two stage-1 seeds), below it in one",
    )
    parser.add_argument(
        "--cutoff-rule",
        choices=CUTOFF_RULES,
        default="f1-at-annotator-accuracy",
        help="the dissatisfaction cutoff chosen on held-out slices: best F1 there, or (the "
        "default since session 12) best F1 among the cutoffs at least as accurate as the "
        "single annotator on the same turns; '-bagged' (session 43, not the default): the "
        "median of that rule's cutoffs over resamples of the slices' dialogues",
    )
    parser.add_argument(
        "--rating-rule",
        choices=RATING_RULES,
        default="shared",
        help="the 1-5 rating weights' powers chosen on the same slices (best mean UAR and "
        "kappa): one for both sides of the dissatisfaction cutoff, or one for each "
        "('per-side'; session 44: not better on two fresh draws, not the default)",
    )
    parser.add_argument(
        "--uss-eval-finetune",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also score each --uss-eval file by k-fold cross-validation on its own ratings, "
        "each fold's model fine-tuned from the USS training file's model (in_domain_finetuning)",
    )
    parser.add_argument(
        "--uss-patience",
        type=int,
        default=4,
        help="a satisfaction model stops after this many epochs without a better validation "
        "loss, 0 = never (in session 6 their best epochs were 3-6 of 16)",
    )
    parser.add_argument(
        "--uss-init-lr",
        type=float,
        help="the satisfaction models fine-tune the weights their SGD model trained at this "
        "learning rate (the new satisfaction head and pooling at the usual 2e-3); default: "
        "2e-3 too. Their own ratings' in-domain fine-tuning (--uss-eval-finetune) is unchanged. "
        "Session 45: 2e-4 ranked worse; 5e-3 better on one draw's validation slices and worse "
        "on the other's, so not the default (docs/benchmarks.md)",
    )
    parser.add_argument(
        "--reuse-models",
        action="store_true",
        help="take the models an earlier run left in --out instead of training them again, "
        "where its settings.json matches what this run's flags, data and starting checkpoint "
        "would train (others are trained again); calibration, labeling and scoring run anew "
        "(to measure a change in decoding)",
    )
    helps = {
        "sgd_pretrain_extra": "stage 1 also reads this many SGD training dialogues beyond the "
        "fine-tuning sample, 'all' = every one no other sample or draw holds",
        "sgd_train_test": "this many SGD training dialogues outside the fine-tuning and stage-1 "
        "samples are only scored, as a test of seen services",
        "sgd_val": "this many SGD training dialogues outside the other samples pick every SGD "
        "model's epoch and the context arm, 0 = a tenth of the fine-tuning sample",
        "sgd_scarce": "the context arms, with and without stage 1, also fine-tuned in pairs "
        "(--sgd-scarce-pairs) on only this many of the fine-tuning sample's dialogues (stage 1 "
        "reading its whole log): what stage 1 does where labels are scarce",
        "sgd_scarce_val": "a random this many of the held-out training dialogues (--sgd-val) "
        "pick the epochs of the models on the scarce sample; every one of them scores those "
        "models, 0 = all of them pick",
    }
    for name, defaults in LIMITS.items():
        # 0 reads all for a sample, none for the draws beside it
        zero = "0" if name in helps else "all"
        smoke, quick, full = (str(n or zero) for n in defaults)
        parser.add_argument(
            "--" + name.replace("_", "-"),
            type=_count_or_all if name == "sgd_pretrain_extra" else _count,
            help=helps.get(name, "random sample of this many dialogues, 0 = all")
            + f" (default: {full} full, {quick} quick, {smoke} smoke)",
        )
    args = parser.parse_args()
    for name in ("stage1_shrink", "scarce_stage1_shrink", "stage1_tagger_shrink"):
        if getattr(args, name) is not None and not 0 <= getattr(args, name) <= 1:
            flag = "--" + name.replace("_", "-")
            parser.error(f"{flag} must be in [0, 1], got {getattr(args, name)}")
    if args.stage1_tagger_shrink is not None and not args.stage1_echo:
        parser.error(
            "--stage1-tagger-shrink needs --stage1-echo: without it stage 1 trains no tagger"
        )
    if args.only == "ratings":
        if args.uss_eval:
            parser.error("--only ratings scores no --uss-eval file: its models are the ratings'")
        args.uss_ratings_only = True
    for name in ("uss_stage1", "uss_ratings_scarce"):
        if getattr(args, name) and not args.uss_ratings_only:
            parser.error(f"--{name.replace('_', '-')} needs --uss-ratings-only")
    named = [path.resolve() for path in args.uss_stage1 or []]
    if len(set(named)) < len(named):
        parser.error("--uss-stage1 names a checkpoint twice: its arms would be one model")
    if args.sgd_scarce_pairs == 0:
        parser.error("--sgd-scarce-pairs needs at least 1 pair (--sgd-scarce 0 trains none)")
    if args.scarce_epochs == 0:
        parser.error("--scarce-epochs needs at least 1 epoch (--sgd-scarce 0 trains none)")
    if args.pretrain_cycle < 0:
        parser.error(f"--pretrain-cycle must be >= 0, got {args.pretrain_cycle}")
    if args.train_jobs < 1:
        parser.error(f"--train-jobs needs at least 1 process, got {args.train_jobs}")
    if args.sgd_model == TWO_SEEDS and not args.second_seed:
        parser.error(f"--sgd-model {TWO_SEEDS} needs the second seed: drop --no-second-seed")
    stems = [path.stem for path in args.uss_eval]
    if len(set(stems)) < len(stems):
        # their outputs (labels-STEM, eval-STEM, results' eval:NAME) would overwrite each other
        parser.error(
            f"--uss-eval files need distinct names, got {', '.join(map(str, args.uss_eval))}"
        )
    _check_inputs(parser, args)
    quick = args.quick or args.smoke
    args.regime = "smoke" if args.smoke else "quick" if quick else "full"
    # Cached frozen states make an epoch cheap next to encoding; the slot tagger keeps
    # improving for many epochs (1,080 dialogues, seen-service slot F1: 0.19 after 4 epochs,
    # 0.82 after 16)
    args.epochs = 1 if args.smoke else 8 if quick else 16
    args.pretrain_epochs = args.pretrain_epochs or (1 if quick else 2)
    args.folds = 2 if args.smoke else 5
    # four pairs measure stage 1 in the full run (when asked); two keep the quick run's 10
    args.sgd_scarce_pairs = args.sgd_scarce_pairs or (2 if quick else 4)
    # and each pair from its own stage 1 (about 3.6 minutes of the full run, session 47), its
    # models trained until their held-out loss stops improving (quick: as long as the others)
    args.scarce_stage1 = args.scarce_stage1 or ("shared" if quick else "per-pair")
    args.scarce_epochs = args.scarce_epochs or (args.epochs if quick else 64)
    args.layers = 4  # token states: the mean of MiniLM's last 4 of 6 layers
    for name, limits in LIMITS.items():
        if getattr(args, name) is None:
            setattr(args, name, limits[0 if args.smoke else 1 if quick else 2])
        if getattr(args, name) == 0:
            setattr(args, name, None)
    start = time.perf_counter()
    results: dict[str, Any] = {
        "command": " ".join(["python", *sys.argv]),
        # the kernels torch picks for the CPU (AVX2, AVX512, ...) may round differently:
        # session 17's machine trained other models than session 16's from the same code,
        # data and seed
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} CPUs "
        f"({torch.backends.cpu.get_cpu_capability()}), Python {platform.python_version()}, "
        f"torch {torch.__version__}",
        "quick": quick,
        "regime": args.regime,
        # every option as this run resolved it, defaults and regime limits included: the
        # command line alone does not say what a run with other defaults would repeat
        "options": {k: _plain(v) for k, v in sorted(vars(args).items())},
    }
    path = args.out / "results.json"
    earlier = json.loads(path.read_text()) if args.only and path.exists() else {}
    replaced = {"ratings": ("uss", "model"), "stage1": ("sgd", "model_arm")}.get(args.only)
    if replaced and replaced[1] in earlier.get(replaced[0], {}):
        # this run's half would hold fewer models, in place of the model's
        raise SystemExit(
            f"--only {args.only} would replace the {replaced[0].upper()} figures of the run "
            f"in {args.out}: give it an --out of its own"
        )
    results["seconds_by_half"] = {}
    merged = {**earlier, **results}
    # --only ratings is a USS half of fewer models, --only stage1 an SGD half of one
    only = {"ratings": "uss", "stage1": "sgd"}.get(args.only, args.only)
    kept = {"sgd": "uss", "uss": "sgd"}.get(only)
    if kept in earlier and (seed := half_options(earlier, kept).get("seed")) != args.seed:
        # allowed (a USS half may draw other folds over the same SGD models), but the two
        # halves' figures are then not one draw's: say so, and each half records its options
        print(
            f"note: the {kept} half in {args.out} ran with --seed {seed}, this {only} half "
            f"with --seed {args.seed}; results.json keeps each half's options "
            f"({kept}.provenance, {only}.provenance)",
            file=sys.stderr,
        )
    for half, run in (("sgd", sgd), ("uss", ratings_half if args.only == "ratings" else uss)):
        if only in (None, half):
            begun = time.perf_counter()
            results[half] = run(args)
            # the command, machine and options that wrote this half: the top-level ones are
            # the last run's, and a half rerun alone (`--only`) keeps the other half's figures
            results[half]["provenance"] = {
                key: results[key] for key in ("command", "machine", "options")
            }
            # what each input log gave: dialogues read, records rejected and where they are
            results[half]["inputs"] = {k: v for k, v in INPUTS.items() if k.startswith(half)}
            results["seconds_by_half"][half] = round(time.perf_counter() - begun, 1)
            results["seconds"] = round(time.perf_counter() - start, 1)
            results["seconds_by_step"] = {k: round(v, 1) for k, v in TIMINGS.items()}
            results["training_seconds_by_model"] = MODEL_SECONDS
            # the run's seconds in order: each step side by side or not, and "other" between
            results["timeline"] = timeline(start, time.perf_counter())
            # written after each half, so a run stopped in the USS half keeps the SGD figures
            # (and `--only uss` can start from its models); "finished" says which it is
            results["finished"] = half == "uss" or only == "sgd"
            # one half rerun: keep the other half's figures; the targets read off both
            merged = {**earlier, **results}
            merged["seconds_by_half"] = {
                **earlier.get("seconds_by_half", {}),
                **results["seconds_by_half"],
            }
            merged["targets"] = targets(merged)
            _write_json(path, merged)
    print(json.dumps(merged))
    # the verdict a reader looks for first, after the figures (stdout stays one JSON line)
    print(f"\nTargets ({args.regime} run; the bars are the full run's):", file=sys.stderr)
    print(table(merged["targets"]), file=sys.stderr)


def _check_inputs(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Every input this run will read, opened now, each up to its first dialogue: a mistyped
    or empty path stops the run here, not when it is first read (a full run reads its
    --uss-eval files about 38 minutes in). What a whole log holds is still decided where it is
    read, rejects and all."""
    sgd, uss = args.only in (None, "sgd", "stage1"), args.only in (None, "uss", "ratings")
    inputs = [("--sgd-train", args.sgd_train, "sgd")] if sgd else []
    if args.only in (None, "sgd"):  # stage 1 alone scores nothing on dev
        inputs.append(("--sgd-dev", args.sgd_dev, "sgd"))
    if uss:
        inputs.append(("--uss-train", args.uss_train, "uss"))
        inputs += [("--uss-eval", path, "uss") for path in args.uss_eval]
    for flag, path, fmt in inputs:
        records = read_log(path, fmt)
        try:
            readable = any(isinstance(record, Dialogue) for record in records)
        except LogReadError as err:
            parser.error(f"{flag}: {err}")
        finally:
            records.close()
        if not readable:
            parser.error(f"{flag}: no record of {path} reads as a {fmt.upper()} dialogue")
    for path in args.uss_stage1 or []:
        if not path.is_file():
            parser.error(f"--uss-stage1: {path} is not a file")


def _count(text: str) -> int:
    """A number of dialogues: a negative one would slice a sample from its end, or fail deep
    in a draw, instead of being refused here."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {n}")
    return n


def _count_or_all(text: str) -> int | str:
    """A number of dialogues, or "all" of them."""
    if text == "all":
        return text
    try:
        return _count(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0 or 'all', got {text!r}") from None


def _plain(value: Any) -> Any:
    """An option's value as JSON holds it (paths as text)."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value) if isinstance(value, Path) else value


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Replaces the file whole: a stopped run never leaves half of a results.json."""
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    part.write_text(json.dumps(data, indent=2))
    part.replace(path)


if __name__ == "__main__":
    main()
