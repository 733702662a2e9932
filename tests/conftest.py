from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# One thread per test process, and for the scripts they start (run_python passes the
# environment on): `pytest -n 2` already keeps both cores busy, and a second thread in each
# worker only made them wait on each other. The suite took 22:01 with torch's default of 2
# threads, 14:27 with 1, and 10:38 with the benchmark scripts' tests at one thread too, on
# session 35's 2-core machine (docs/benchmarks.md, "11.").
os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]


def run_python(
    args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: int = 900
) -> subprocess.CompletedProcess:
    """`python ARGS` in a fresh process (the checkout importable, W&B off unless `env` says
    otherwise), output captured; callers check the exit code."""
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real public data beside the checkout (../shared/data); tests need it, never copy it."""
    assert SHARED_DATA.is_dir(), f"{SHARED_DATA} is missing: the real-data tests read it by path"
    return SHARED_DATA


@pytest.fixture(scope="session")
def sgd_file(shared_data) -> Path:
    """One file of SGD's training split (about a hundred dialogues): for tests that sample a
    few, since reading the whole split (97 files) takes longer than such a test needs."""
    return shared_data / "sgd" / "train" / "dialogues_001.json.gz"


def full_dialogue(dialogue_id: str = "d1") -> dict[str, Any]:
    """A canonical dialogue that sets every field of the contract at least once."""
    slot = {"slot": "song", "start": 5, "end": 16, "value": "Purple Haze"}
    return {
        "dialogue_id": dialogue_id,
        "system_opening": "Hi, what can I do for you?",
        "rating": 4,
        "goals": [
            {
                "goal_id": "g0",
                "intent": "PlaySong",
                "success": True,
                "annotations": [
                    {"annotator": "a0", "success": True},
                    {"annotator": "a1", "success": False},
                ],
            }
        ],
        "annotations": [
            {"annotator": "a0", "rating": 4, "opening_satisfaction": 3},
            {"annotator": "a1", "rating": 5},
        ],
        "turns": [
            {
                "turn_id": "t0",
                "user_text": "play Purple Haze",
                "system_text": "Playing Purple Rain.",
                "domain": "Music",
                "logged_intent": "PlaySong",
                "dialogue_status": "in_progress",
                "user_tokens": 3,
                "system_tokens": 3,
                "asr_confidence": 0.8125,
                "nlu_confidence": 0.1 + 0.2,
                "audio_path": "wav/t0.wav",
                "barge_in": True,
                "rephrase": True,
                "rejection": False,
                "explicit_feedback": False,
                "intent": "PlaySong",
                "slots": [slot],
                "goal_id": "g0",
                "user_acts": ["INFORM_INTENT", "INFORM"],
                "system_acts": ["NOTIFY_SUCCESS"],
                "satisfaction": 2,
                "annotations": [
                    {
                        "annotator": "a0",
                        "intent": "PlaySong",
                        "slots": [slot],
                        "satisfaction": 2,
                        "segment": "B",
                    },
                    {
                        "annotator": "a1",
                        "intent": "PlayAlbum",
                        "slots": [],
                        "satisfaction": 1,
                        "segment": "B",
                    },
                ],
            },
            {
                "turn_id": "t1",
                "user_text": "no, Purple Haze by Jimi Hendrix",
                "slots": [],
                "goal_id": "g0",
            },
            {"turn_id": "t2", "user_text": "thanks"},
        ],
    }


def intent_labels(tmp_path: Path, wrong_every: int = 0) -> tuple[Path, Path]:
    """A synthetic reference log (30 dialogues) and `labelgen label`-style shards with its
    intents as the model's (every `wrong_every`-th turn from 0 wrong and sent to review)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from labelgen.data.synth import generate, synth_to_file
    from labelgen.labeling.writer import LABEL_SCHEMA

    log = tmp_path / "ref.jsonl"
    synth_to_file(log, 30, seed=2)
    rows = []
    for d in generate(30, seed=2):
        for t, turn in enumerate(d.turns):
            wrong = bool(wrong_every) and t % wrong_every == 0
            rows.append(
                {
                    "dialogue_id": d.dialogue_id,
                    "turn_index": t,
                    "turn_id": turn.turn_id,
                    "intent": "Wrong" if wrong else turn.intent,
                    "intent_confidence": 0.6 if wrong else 0.9,
                    "review": ["intent"] if wrong else [],
                }
            )
    labels = tmp_path / "labels"
    labels.mkdir()
    pq.write_table(pa.Table.from_pylist(rows, schema=LABEL_SCHEMA), labels / "part-000000.parquet")
    return log, labels
