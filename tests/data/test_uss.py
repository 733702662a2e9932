from __future__ import annotations

from labelgen.data.readers import read_log
from labelgen.data.rejects import Reject
from labelgen.data.schema import Dialogue
from labelgen.data.summary import LogSummary
from labelgen.data.uss import read_uss

GOOD = (
    "USER\tfind me a film\tINFORM_INTENT\t3,3,4\n"
    "SYSTEM\tWhere?\tREQUEST\t\n"
    "USER\tIn Napa.\tINFORM\t2,3,3\n"
    "SYSTEM\tDumbo is on.\tOFFER\t\n"
    "SYSTEM\tAnything else?\tREQ_MORE\t\n"
    "USER\tno\tNEGATE\t4,4,5\n"
    "USER\tOVERALL\t\t3,4,4\n"
)


def test_ratings_land_on_the_turn_whose_response_they_judge(tmp_path):
    path = tmp_path / "Mini.txt"
    path.write_text("SYSTEM\tHello!\tGREET\t\n" + GOOD)
    [d] = list(read_uss(path))
    assert d.dialogue_id == "Mini-00000" and d.system_opening == "Hello!"
    assert [t.user_text for t in d.turns] == ["find me a film", "In Napa.", "no"]
    assert d.turns[1].system_text == "Dumbo is on.\nAnything else?"
    assert d.turns[1].system_acts == ["OFFER", "REQ_MORE"]
    # "In Napa." (2,3,3) judges "Where?", which is turn 0's response; "no" judges turn 1.
    assert [a.satisfaction for a in d.turns[0].annotations] == [2, 3, 3]
    assert [a.satisfaction for a in d.turns[1].annotations] == [4, 4, 5]
    assert d.turns[2].annotations is None
    assert [(a.rating, a.opening_satisfaction) for a in d.annotations] == [(3, 3), (4, 3), (4, 4)]
    assert d.turns[0].user_acts == ["INFORM_INTENT"]


def test_broken_blocks_are_rejected_and_ids_stay_stable(tmp_path):
    blocks = [
        GOOD,
        GOOD.replace("2,3,3", "2,x,3"),
        GOOD.replace("In Napa.\tINFORM", "In Napa."),
        GOOD.replace("Where?\tREQUEST\t", "Where?\tREQUEST\t3"),
        GOOD.replace("USER\tno", "BOT\tno"),
        GOOD.replace("3,3,4", "3,9,4"),
        GOOD.replace("In Napa.", " "),
        GOOD + "USER\tafter overall\tINFORM\t3,3,3\n",
        GOOD,
    ]
    path = tmp_path / "Mixed.txt"
    data = "\n".join(blocks).encode().replace(b"Dumbo", b"Dumb\xff", 1) + b"\n"
    data += b"\n" + GOOD.encode()
    path.write_bytes(data)
    items = list(read_log(path, "uss"))
    assert len(items) == len(blocks) + 1
    good = [i.dialogue_id for i in items if isinstance(i, Dialogue)]
    assert good == ["Mixed-00008", "Mixed-00009"]
    reasons = [i.reason for i in items if isinstance(i, Reject)]
    assert "not UTF-8" in reasons[0]
    assert "not comma-separated integers" in reasons[1]
    assert "has 3 tab-separated fields" in reasons[2]
    assert "a SYSTEM line carries ratings" in reasons[3]
    assert "role 'BOT'" in reasons[4]
    assert "outside 1-5" in reasons[5]
    assert "user_text is empty" in reasons[6]
    assert "must be last" in reasons[7]
    first = next(i for i in items if isinstance(i, Reject))
    assert first.source == f"{path}:1-7"


def test_redial_and_jddc_layouts_read_as_the_others(tmp_path):
    # ReDial writes the roles in lower case; JDDC adds a fifth field, empty except for the
    # annotators' explanations on the OVERALL line.
    redial = GOOD.replace("USER\t", "user\t").replace("SYSTEM\t", "system\t")
    redial = redial.replace("user\tOVERALL", "USER\tOVERALL")
    jddc = "".join(f"{line}\t\n" for line in GOOD.splitlines()[:-1])
    jddc += "USER\tOVERALL\t\t3,4,4\tslow to answer; fine ;\n"
    plain, lower, fifth = (
        next(read_uss(_put(tmp_path / layout / "Mini.txt", text)))
        for layout, text in (("sgd", GOOD), ("redial", redial), ("jddc", jddc))
    )
    for other in (lower, fifth):
        assert isinstance(other, Dialogue)
        assert other.turns == plain.turns
        assert [a.rating for a in other.annotations] == [3, 4, 4]
    assert [a.explanation for a in fifth.annotations] == ["slow to answer", "fine", None]
    assert all(a.explanation is None for a in plain.annotations)
    summary = LogSummary()
    summary.add(fifth)
    assert summary.annotator_labels["dialogue_explanation"] == 2


def test_explanations_only_where_the_format_puts_them(tmp_path):
    stray = "USER\thi\t\t3,3,3\tnot here\nUSER\tOVERALL\t\t3,3,3\t\n"
    extra = "USER\thi\t\t3,3,3\t\nUSER\tOVERALL\t\t3,3,3\ta;b;c;d\n"
    shouted = "USER\thi\t\t3,3,3\nBOT\thello\t\t\nUSER\tOVERALL\t\t3,3,3\n"
    path = _put(tmp_path / "Bad.txt", "\n".join((stray, extra, shouted)))
    reasons = [item.reason for item in read_uss(path)]
    assert "only the OVERALL line carries explanations" in reasons[0]
    assert "4 explanations for 3 ratings" in reasons[1]
    assert "role 'BOT'" in reasons[2]


def _put(path, text):
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


def _raw_counts(path):
    """Independent count of dialogues and of the ratings that should land on turns."""
    dialogues = turn_ratings = 0
    for block in path.read_text().split("\n\n"):
        lines = [line.split("\t") for line in block.strip("\n").split("\n") if line]
        if not lines:
            continue
        dialogues += 1
        users = [f for f in lines if f[0] == "USER" and f[1] != "OVERALL"]
        turn_ratings += sum(len(f[3].split(",")) for f in users[1:])
    return dialogues, turn_ratings


def test_real_uss_files_read_completely(shared_data):
    for name, expected in (("SGD.txt", 1000), ("CCPE.txt", 500)):
        path = shared_data / "uss" / name
        summary = LogSummary()
        for item in read_log(path, "uss"):
            summary.add(item)
        dialogues, turn_ratings = _raw_counts(path)
        assert summary.dialogues == expected == dialogues
        assert summary.rejected == 0
        assert summary.annotator_labels["satisfaction"] == turn_ratings
        assert summary.annotator_labels["dialogue_rating"] >= 3 * expected
        assert 3 <= summary.max_annotators <= 7
