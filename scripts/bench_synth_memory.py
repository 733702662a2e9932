"""Peak resident memory of `labelgen synth` at two sizes, each in a fresh process.

    python scripts/bench_synth_memory.py --small 10000 --large 100000

Prints one JSON line: peak RSS (MB) and seconds per size, and the large/small memory ratio
(constant-memory streaming keeps it near 1).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def peak_mb(dialogues: int, out: Path) -> tuple[float, float]:
    code = (
        "import resource, sys; from labelgen.cli import main; "
        f"main(['synth', '--dialogues', '{dialogues}', '--out', '{out}']); "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)"
    )
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    seconds = time.perf_counter() - start
    return int(result.stderr.strip().splitlines()[-1]) / 1024, seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--format", default="jsonl", choices=["jsonl", "parquet"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        small = peak_mb(args.small, Path(tmp) / f"s.{args.format}")
        large = peak_mb(args.large, Path(tmp) / f"l.{args.format}")
    print(
        json.dumps(
            {
                "format": args.format,
                "small": {
                    "dialogues": args.small,
                    "peak_rss_mb": round(small[0], 1),
                    "seconds": round(small[1], 1),
                },
                "large": {
                    "dialogues": args.large,
                    "peak_rss_mb": round(large[0], 1),
                    "seconds": round(large[1], 1),
                },
                "memory_ratio": round(large[0] / small[0], 3),
            }
        )
    )


if __name__ == "__main__":
    main()
