from __future__ import annotations

from labelgen.data.schema import Dialogue
from labelgen.labeling.render import render_dialogue


def test_slots_segments_confidences_and_escaping():
    dialogue = Dialogue.model_validate(
        {
            "dialogue_id": "d<1>",
            "turns": [
                {"user_text": "play <b>Purple Haze</b> now", "system_text": "Playing & more"},
                {"user_text": "thanks"},
            ],
        }
    )
    labels = [
        {
            "turn_index": 0,
            "goal_id": "g0",
            "segment": "B",
            "intent": "PlaySong",
            "intent_confidence": 0.934,
            "slots": [
                {"slot": "song", "start": 8, "end": 19, "value": "Purple Haze", "confidence": 0.81}
            ],
            "satisfaction": 2,
            "satisfaction_confidence": 0.4,
            "review": ["satisfaction"],
        },
        # a span past the text (a hand-edited file) is skipped, not rendered out of place
        {"turn_index": 1, "slots": [{"slot": "x", "start": 3, "end": 99, "value": "?"}]},
    ]
    html = render_dialogue(dialogue, labels)
    assert "play <b>" not in html and "play &lt;b&gt;" in html and "d&lt;1&gt;" in html
    assert '<mark title="song 0.81">Purple Haze<sub>song</sub></mark>' in html
    assert "PlaySong <small>(0.93)</small>" in html and "Playing &amp; more" in html
    assert ">satisfaction</td>" in html and "g0" in html
    assert html.count("<mark") == 1 and html.count("<tr>") == 3
