from __future__ import annotations

import json

import pytest

from labelgen.cli import main
from tests.review.conftest import LabelStudio


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_export_then_import(capsys, labels, log, tmp_path):
    tasks = tmp_path / "tasks.json"
    args = ["review", "export", "--labels", labels, "--log", log, "--out", tasks]
    code, out, _ = _run(capsys, *args)
    assert code == 0
    assert out.startswith("wrote 5 Label Studio tasks from 3 dialogues")
    assert "not exported: 1 turns flagged only for tasks not exported" in out
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["tasks"] == 5 and summary["config"] == f"{tasks}.config.xml"

    ls = LabelStudio(json.loads(tasks.read_text()))
    ls.annotate("d1", "t0", 7, intent="PlaySong")
    ls.annotate("d2", "u0", 7, cancel=True)
    ls.annotate("d5", "d5:0", 7, segment="X")
    export = ls.export(tmp_path / "export.json")
    annotated = tmp_path / "annotated.jsonl"
    code, out, _ = _run(
        capsys, "review", "import", "--export", export, "--log", log, "--out", annotated
    )
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0] == (
        "imported 1 annotations by 1 annotators onto 1 turns of 1 dialogues; 1 skipped "
        "(cancelled), 0 tasks not annotated, 1 rejected"
    )
    assert lines[1] == f"wrote 5 dialogues to {annotated}, 1 rejects to {annotated}.rejects.jsonl"
    summary = json.loads(lines[-1])
    assert (summary["annotations"], summary["rejected"]) == (1, 1)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--labels", "{tmp}", "--out", "{tmp}/t.json"], "holds no part-*.parquet label shards"),
        (["--labels", "{labels}", "--out", "{tmp}/t.txt"], "imports tasks from a .json file"),
        (
            ["--labels", "{labels}", "--out", "{tmp}/t.json", "--tasks", "intent,goal_success"],
            "cannot review goal_success; choose from intent, slots, segment, satisfaction",
        ),
    ],
)
def test_export_usage_errors_are_one_line_and_exit_2(capsys, labels, log, tmp_path, args, message):
    argv = [a.format(tmp=tmp_path, labels=labels) for a in args]
    code, _, err = _run(capsys, "review", "export", "--log", log, *argv)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("labelgen review: error: ")
    assert message in err


def test_import_usage_errors_are_one_line_and_exit_2(capsys, log, tmp_path):
    export = tmp_path / "export.json"
    export.write_text('{"not": "a list"}')
    cases = [
        (export, log, tmp_path / "a.jsonl", "is not a Label Studio JSON export"),
        (tmp_path / "missing.json", log, tmp_path / "a.jsonl", "missing.json cannot be read"),
        (export, tmp_path / "none.jsonl", tmp_path / "a.jsonl", "none.jsonl does not exist"),
        (export, log, tmp_path / "a.txt", "output must end in .jsonl, .jsonl.gz or .parquet"),
    ]
    export_list = tmp_path / "list.json"
    export_list.write_text("[]")
    cases[2:] = [(export_list, *case[1:]) for case in cases[2:]]
    for source, path, out, message in cases:
        args = ["review", "import", "--export", source, "--log", path, "--out", out]
        code, _, err = _run(capsys, *args)
        assert code == 2, message
        assert err.count("\n") == 1 and err.startswith("labelgen review: error: ")
        assert message in err
        assert not out.exists()


def test_review_needs_a_step(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["review"])
    assert exit_.value.code == 2
    assert "STEP" in capsys.readouterr().err
