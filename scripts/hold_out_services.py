"""An SGD evaluation split the size and shape of SGD's test split, from the train and dev here.

SGD's test split (4,201 dialogues, most of them touching services absent from train) is not in
../shared/data. To measure what the quality benchmark does on a split that size, this moves
every training dialogue that touches one of `--services` out of train and into a copy of dev:
those services become unseen, as most of test's are.

    python scripts/hold_out_services.py --services Events_2 Services_3 --out /tmp/testsim
    python scripts/benchmark_quality.py --sgd-train /tmp/testsim/train --sgd-dev /tmp/testsim/eval

Writes `train/` (the dialogues kept, gzip-compressed, with train's schema.json) and `eval/`
(dev's dialogues and the ones moved, with both schemas merged) under --out. Reads the folders
as they are published (the data stays outside the repository).
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path


def _dialogues(folder: Path) -> list[dict]:
    out: list[dict] = []
    for path in sorted(folder.glob("dialogues_*.json*")):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as handle:
            out.extend(json.load(handle))
    return out


def _write(dialogues: list[dict], folder: Path, schema: list[dict], compress: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "schema.json").write_text(json.dumps(schema), encoding="utf-8")
    for k in range(0, len(dialogues), 128):  # SGD's files hold about 128 dialogues each
        name = f"dialogues_{k // 128 + 1:03d}.json"
        text = json.dumps(dialogues[k : k + 128])
        if compress:
            (folder / (name + ".gz")).write_bytes(gzip.compress(text.encode("utf-8")))
        else:
            (folder / name).write_text(text, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sgd-train", type=Path, default=Path("../shared/data/sgd/train"))
    parser.add_argument("--sgd-dev", type=Path, default=Path("../shared/data/sgd/dev"))
    parser.add_argument("--services", nargs="+", required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    train, dev = _dialogues(args.sgd_train), _dialogues(args.sgd_dev)
    held = set(args.services)
    unknown = held - {s for d in train for s in d["services"]}
    if unknown:
        parser.error(f"no training dialogue touches {sorted(unknown)}")
    # SGD's ids are unique within a split only (train and dev share 4_00019 and others)
    moved = [
        {**d, "dialogue_id": "train_" + d["dialogue_id"]}
        for d in train
        if held & set(d["services"])
    ]
    kept = [d for d in train if not held & set(d["services"])]
    schemas = [json.loads((f / "schema.json").read_text()) for f in (args.sgd_train, args.sgd_dev)]
    merged = list({s["service_name"]: s for schema in schemas for s in schema}.values())
    _write(kept, args.out / "train", schemas[0], compress=True)
    _write(dev + moved, args.out / "eval", merged, compress=False)
    print(json.dumps({"train": len(kept), "eval": len(dev) + len(moved), "moved": len(moved)}))


if __name__ == "__main__":
    main()
