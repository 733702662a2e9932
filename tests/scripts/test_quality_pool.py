"""The quality benchmark's models trained and labeling side by side (`quality.pool`): the same
models and labels as one after another, each model started after the model it starts from, and
a failure that stops the run."""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from tests.conftest import ROOT, run_python

_JOBS = """
import argparse, json, sys
from pathlib import Path
import torch
import quality.runs
from quality.pool import Job, map_side_by_side, train_all
from quality.runs import MODEL_SECONDS, label, read, write_log
from quality.sgd import SGD_TASKS
source, out, jobs = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(1)  # side by side, each process gets this process's threads // jobs
quality.runs.LABEL_THREADS = 1  # as each labeling process side by side
args = argparse.Namespace(
    out=out, epochs=1, pooling="mean", pool_sides=True, layers=4, seed=0, reuse_models=False,
    warm_cache=True, train_jobs=jobs,
)
dialogues = read(source, "sgd", 20, 0, rejects=out / "rejects.jsonl")[0]
a, b, v = (write_log(dialogues[i:j], out / f"{n}.parquet") for n, i, j in
           (("a", 0, 8), ("b", 8, 16), ("v", 16, 20)))
trained = train_all(
    {
        "first": Job(out / "first", a, v, SGD_TASKS),
        "then": Job(out / "then", b, v, SGD_TASKS, {"seed": 1}, after="first"),
        "alone": Job(out / "alone", b, v, SGD_TASKS, {"context": False}),
    },
    args,
)
checkpoints = {k: str(p) for k, p in trained.items()}
# each model and an ensemble label the held-out log, each log twice
calls = {(k, log.stem): (p, log, out / f"labels-{k}-{log.stem}") for k, p in trained.items()
         for log in (v, a)}
calls["pair", "v"] = ([trained["then"], trained["alone"]], v, out / "labels-pair-v")
labels = {"/".join(k): str(p) for k, p in map_side_by_side(label, calls, args).items()}
print(json.dumps({"checkpoints": checkpoints, "seconds": MODEL_SECONDS, "labels": labels}))
"""


def _weights(path) -> dict[str, torch.Tensor]:
    state = torch.load(path, map_location="cpu", weights_only=False)["state_dict"]
    return {k: v for k, v in state.items() if not k.startswith("encoder.model.")}


@pytest.mark.slow
def test_side_by_side_trains_the_models_one_after_another_would(tmp_path, sgd_file):
    script = tmp_path / "jobs.py"
    script.write_text(_JOBS)
    runs = {}
    for jobs in (1, 2):  # each in a fresh process, so each fills its own cache
        out = tmp_path / f"jobs{jobs}"
        out.mkdir()
        done = run_python(
            [str(script), str(sgd_file), str(out), str(jobs)],
            tmp_path,
            env={"PYTHONPATH": f"{ROOT}:{ROOT / 'scripts'}"},
        )
        assert done.returncode == 0, done.stderr[-3000:]
        runs[jobs] = json.loads(done.stdout.strip().splitlines()[-1])
    for jobs, run in runs.items():
        # the workers' seconds reach the parent, by each model's folder
        assert set(run["seconds"]) == {"first", "then", "alone"}, jobs
        assert all(seconds > 0 for seconds in run["seconds"].values())
        # "then" started from "first"'s checkpoint, as it stood when "first" was done
        settings = json.loads((tmp_path / f"jobs{jobs}" / "then" / "settings.json").read_text())
        first = (tmp_path / f"jobs{jobs}" / "first" / "best.ckpt").read_bytes()
        assert settings["init_from"] == hashlib.blake2b(first, digest_size=16).hexdigest()
    # the same models, bit for bit: the cache was filled in the same order, the threads alike
    for name in ("first", "then", "alone"):
        one, two = (_weights(runs[jobs]["checkpoints"][name]) for jobs in (1, 2))
        assert one.keys() == two.keys()
        assert all(torch.equal(one[k], two[k]) for k in one), name
    # and the models differ from each other (the comparison above can fail)
    first, then = (_weights(runs[2]["checkpoints"][n]) for n in ("first", "then"))
    assert any(not torch.equal(first[k], then[k]) for k in first)
    # labeled side by side, each model's labels are those of one after another, bit for bit
    assert list(runs[1]["labels"]) == list(runs[2]["labels"])  # every call, in its order
    tables = {
        jobs: {key: _labels(folder) for key, folder in run["labels"].items()}
        for jobs, run in runs.items()
    }
    assert len(tables[2]) == 7 and all(table.num_rows > 0 for table in tables[2].values())
    for key in tables[1]:
        assert tables[1][key].equals(tables[2][key]), key
    assert not tables[2]["first/v"].equals(tables[2]["then/v"])  # the models' labels differ


def _labels(folder):
    parts = sorted(Path(folder).glob("part-*.parquet"))
    assert parts, folder
    return pa.concat_tables([pq.read_table(part) for part in parts])


@pytest.mark.slow
def test_a_failed_model_stops_the_run_and_no_job_waiting_on_it_starts(
    tmp_path, sgd_file, monkeypatch
):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    from quality.pool import Job, train_all
    from quality.runs import read, write_log
    from quality.sgd import SGD_TASKS

    dialogues = read(sgd_file, "sgd", 8, 0, rejects=tmp_path / "r.jsonl")[0]
    fine = write_log(dialogues[:6], tmp_path / "fine.parquet")
    val = write_log(dialogues[6:], tmp_path / "val.parquet")
    args = argparse.Namespace(
        out=tmp_path, epochs=1, pooling="mean", pool_sides=True, layers=4, seed=0,
        reuse_models=False, warm_cache=False, train_jobs=2,
    )  # fmt: skip
    jobs = {
        "broken": Job(tmp_path / "broken", tmp_path / "missing.parquet", val, SGD_TASKS),
        "waits": Job(tmp_path / "waits", fine, val, SGD_TASKS, after="broken"),
        "fine": Job(tmp_path / "fine", fine, val, SGD_TASKS),
    }
    with pytest.raises(Exception) as raised:
        train_all(jobs, args)
    # the worker's error, with its traceback, reaches this process
    assert "missing.parquet" in "".join(map(str, (raised.value, raised.value.__cause__)))
    assert not (tmp_path / "waits").exists()
    # the model already training when the other failed ran to its end, nothing half-written
    assert (tmp_path / "fine" / "best.ckpt").is_file()
    assert (tmp_path / "fine" / "settings.json").is_file()


def test_a_job_can_only_wait_on_a_job_before_it(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    from quality.pool import Job, train_all

    args = argparse.Namespace(train_jobs=2)
    log = tmp_path / "log.parquet"
    later = {
        "a": Job(tmp_path / "a", log, None, {}, after="b"),
        "b": Job(tmp_path / "b", log, None, {}),
    }
    with pytest.raises(ValueError, match="job a comes after b, which is not a job before it"):
        train_all(later, args)
    with pytest.raises(ValueError, match="job a comes after c"):
        train_all({"a": Job(tmp_path / "a", log, None, {}, after="c")}, args)
    assert not list(tmp_path.iterdir())  # refused before anything ran


def test_where_no_process_can_fork_the_models_train_one_after_another(
    monkeypatch, tmp_path, capsys
):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    import quality.pool as pool

    calls = []

    def train(out, train_log, val_log, weights, args, **options):
        calls.append((out.name, options.get("init_from")))
        return out / "best.ckpt"

    # the scheduling alone is under test here: `train` records its calls (the models
    # themselves are trained in the tests above)
    monkeypatch.setattr(pool, "train", train)
    monkeypatch.setattr(pool.multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    log = tmp_path / "log.parquet"
    jobs = {
        "a": pool.Job(tmp_path / "a", log, None, {}),
        "b": pool.Job(tmp_path / "b", log, None, {}, after="a"),
        "c": pool.Job(tmp_path / "c", log, None, {}),
    }
    done = pool.train_all(jobs, argparse.Namespace(train_jobs=2, warm_cache=True))
    assert "cannot fork a process; the models train one after another" in capsys.readouterr().err
    assert calls == [("a", None), ("b", str(tmp_path / "a" / "best.ckpt")), ("c", None)]
    assert list(done) == ["a", "b", "c"]


def test_a_failed_labeling_call_stops_the_map(monkeypatch, tmp_path, sgd_file):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    from quality.pool import map_side_by_side
    from quality.runs import label, read, write_log

    dialogues = read(sgd_file, "sgd", 2, 0, rejects=tmp_path / "r.jsonl")[0]
    log = write_log(dialogues, tmp_path / "log.parquet")
    calls = {
        name: (tmp_path / f"{name}.ckpt", log, tmp_path / f"labels-{name}")
        for name in ("missing", "absent")
    }
    with pytest.raises(Exception) as raised:
        map_side_by_side(label, calls, argparse.Namespace(train_jobs=2))
    # the worker's error reaches this process, naming what it could not read
    assert "missing.ckpt" in "".join(map(str, (raised.value, raised.value.__cause__)))
