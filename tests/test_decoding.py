"""Beam search with an n-gram LM: the ARPA estimator, the lexicon and lexicon-free decoders, hot words, the CLI."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

kenlm = pytest.importorskip("kenlm")
pytest.importorskip("flashlight.lib.text")

from asr_poc.decoding.beam import DecodingOptions, GreedyDecoder, make_decoder  # noqa: E402
from asr_poc.decoding.lm import LMError, LMFiles, build_lm, parse_hotwords  # noqa: E402
from asr_poc.decoding.ngram import arpa_text, estimate  # noqa: E402
from asr_poc.text import CharTokenizer  # noqa: E402

TEXTS = ["the cat sat on the mat", "the cat ran", "a dog sat", "the dog ran on the mat", "a cat sat"]


def _kenlm(tmp_path: Path, text: str):
    path = tmp_path / "m.arpa"
    path.write_text(text)
    return kenlm.Model(str(path))


def test_bigram_probabilities_match_hand_computed_kneser_ney(tmp_path):
    # corpus: "a b", "a c", "b". Bigram counts: <s> a 2, <s> b 1, a b 1, a c 1, b </s> 2, c </s> 1 -> D2 = 4/(4+2*2)
    # = 0.5. Unigram continuation counts: a 1, b 2, c 1, </s> 2 (total 6) -> D1 = 2/(2+2*2) = 1/3; vocabulary
    # {a, b, c, </s>, <unk>}: uniform share gamma = (1/3)(4/6) = 2/9, spread over 5 words.
    p_a = (1 - 1 / 3) / 6 + (2 / 9) / 5  # 7/45
    p_b = (2 - 1 / 3) / 6 + (2 / 9) / 5  # 29/90
    p_a_after_bos = (2 - 0.5) / 3 + (0.5 * 2 / 3) * p_a  # 149/270
    p_b_after_a = (1 - 0.5) / 2 + (0.5 * 2 / 2) * p_b  # 37/90
    p_eos_after_b = (2 - 0.5) / 2 + (0.5 * 1 / 2) * p_b  # 299/360 (p(</s>) = p(b) here)
    model = _kenlm(tmp_path, arpa_text(estimate([s.split() for s in ["a b", "a c", "b"]], order=2)))
    got = [10 ** score for score, _, _ in model.full_scores("a b")]
    assert got == pytest.approx([p_a_after_bos, p_b_after_a, p_eos_after_b], rel=1e-5)
    assert p_a_after_bos == pytest.approx(149 / 270) and p_b_after_a == pytest.approx(37 / 90)
    unk = [10 ** s for s, _, oov in model.full_scores("zebra", bos=False, eos=False)]
    assert unk == pytest.approx([(2 / 9) / 5], rel=1e-5)  # <unk>: only the uniform share


@pytest.mark.parametrize("context", [[], ["<s>"], ["<s>", "the"], ["the", "cat"], ["cat", "sat"], ["dog", "cat"],
                                     ["zebra", "quux"]])
def test_trigram_distributions_sum_to_one_in_every_context(tmp_path, context):
    model = _kenlm(tmp_path, arpa_text(estimate([s.split() for s in TEXTS], order=3)))
    state = kenlm.State()
    if context[:1] == ["<s>"]:
        model.BeginSentenceWrite(state)
        context = context[1:]
    else:
        model.NullContextWrite(state)
    for word in context:
        nxt = kenlm.State()
        model.BaseScore(state, word, nxt)
        state = nxt
    vocabulary = sorted({w for t in TEXTS for w in t.split()} | {"</s>", "<unk>"})
    assert sum(10 ** model.BaseScore(state, w, kenlm.State()) for w in vocabulary) == pytest.approx(1.0, abs=1e-5)


def test_estimator_refuses_empty_text_and_bad_order(tmp_path):
    with pytest.raises(ValueError, match="no text"):
        estimate([], order=3)
    with pytest.raises(ValueError, match="order"):
        estimate([["a"]], order=0)
    with pytest.raises(LMError, match="no text"):
        build_lm(["", "  "], tmp_path / "lm")


# --- decoding a crafted emission matrix -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lm_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("lm")
    build_lm(TEXTS, folder, order=3, char_order=4)
    return folder


TOKENIZER = CharTokenizer.from_texts(TEXTS + ["k"])


def emissions(text: str, ambiguous: dict[int, dict[str, float]] = {}, tokenizer: CharTokenizer = TOKENIZER
              ) -> torch.Tensor:
    """Log-probabilities (1, frames, vocab): each character (`|` for a space) peaked at 0.9, then a blank frame;
    character i gets the distribution `ambiguous[i]` instead."""
    frames = []
    for i, ch in enumerate(text):
        for dist in (ambiguous.get(i, {"|" if ch == " " else ch: 0.9}), {"<pad>": 0.9}):
            p = torch.full((len(tokenizer),), 1e-4)
            for symbol, value in dist.items():
                p[tokenizer.vocab[symbol]] = value
            frames.append(p / p.sum())
    return torch.stack(frames).log().unsqueeze(0)


def greedy(log_probs: torch.Tensor) -> str:
    return TOKENIZER.decode_ctc(log_probs[0].argmax(-1).tolist())


KAT = emissions("the cat sat", {4: {"k": 0.5, "c": 0.4}})  # the acoustics lean to "kat", a word no text has


@pytest.mark.parametrize("lexicon", [True, False])
def test_beam_search_with_lm_fixes_a_greedy_error(lm_folder, lexicon):
    assert greedy(KAT) == "the kat sat"
    decoder = make_decoder(TOKENIZER, {"method": "beam", "lm_path": str(lm_folder), "lexicon": lexicon})
    assert decoder.decode(KAT, torch.tensor([KAT.shape[1]])) == ["the cat sat"]


def test_without_lm_weight_the_acoustics_win(lm_folder):
    decoder = make_decoder(TOKENIZER, {"method": "beam", "lm_path": str(lm_folder), "lexicon": False,
                                       "lm_weight": 0.0})
    assert decoder.decode(KAT) == ["the kat sat"]


def test_greedy_and_beam_without_lm_agree_on_peaked_emissions():
    generator = torch.Generator().manual_seed(0)
    decoder = make_decoder(TOKENIZER, {"method": "beam", "lexicon": False, "lm_weight": 0.0, "beam_size": 8})
    batch = []
    for _ in range(6):
        ids = torch.randint(0, len(TOKENIZER), (60,), generator=generator)
        logits = torch.randn(60, len(TOKENIZER), generator=generator)
        logits[torch.arange(60), ids] += 8.0  # the argmax holds ~99% of each frame's mass
        batch.append(logits.log_softmax(-1))
    log_probs = torch.stack(batch)
    texts = decoder.decode(log_probs, torch.full((6,), 60))
    assert texts == [greedy(lp[None]) for lp in log_probs]
    assert len(set(texts)) == 6 and all(texts)


def test_hot_word_outside_the_texts_is_found_when_boosted(lm_folder):
    plain = make_decoder(TOKENIZER, {"method": "beam", "lm_path": str(lm_folder)})
    boosted = make_decoder(TOKENIZER, {"method": "beam", "lm_path": str(lm_folder), "hotwords": ["kat"]})
    assert plain.decode(KAT) == ["the cat sat"]  # "kat" is not in the lexicon: it cannot be output
    assert boosted.decode(KAT) == ["the kat sat"]
    clear_cat = emissions("the cat sat")  # the boost does not override clear acoustics
    assert boosted.decode(clear_cat) == ["the cat sat"]


def test_lexicon_decoder_outputs_only_lexicon_words(lm_folder):
    noisy = torch.randn(1, 80, len(TOKENIZER), generator=torch.Generator().manual_seed(1)).log_softmax(-1)
    decoder = make_decoder(TOKENIZER, {"method": "beam", "lm_path": str(lm_folder)})
    words = set(LMFiles.open(lm_folder).read_lexicon())
    assert set(decoder.decode(noisy)[0].split()) <= words


def test_decoding_errors_are_one_line(tmp_path, lm_folder):
    with pytest.raises(LMError, match="words.arpa missing"):
        make_decoder(TOKENIZER, {"method": "beam", "lm_path": str(tmp_path)})
    with pytest.raises(LMError, match="needs decoding.lm_path"):
        make_decoder(TOKENIZER, {"method": "beam"})
    with pytest.raises(LMError, match="hot words need the lexicon"):
        make_decoder(TOKENIZER, {"method": "beam", "lm_path": str(lm_folder), "lexicon": False, "hotwords": ["x"]})
    with pytest.raises(LMError, match="weight"):
        parse_hotwords(["acme:lots"])
    assert parse_hotwords(["Acme", "zurich:3"], 2.0) == {"acme": 2.0, "zurich": 3.0}
    assert isinstance(make_decoder(TOKENIZER, None), GreedyDecoder)
    assert DecodingOptions.from_dict({"method": "beam", "lm_path": "x"}).describe() == "beam 32 + lexicon + LM x0.5"


# --- the command and the Transcriber --------------------------------------------------------------------------
def test_lm_build_command_writes_a_folder_kenlm_reads(small_corpus, tmp_path, capsys):
    from asr_poc.cli import main
    from asr_poc.plugins import load_dataset
    from asr_poc.config import load_config

    out = tmp_path / "lm"
    assert main(["lm", "build", "--dataset", "synthetic", "--order", "3", "--out", str(out), "--hotwords", "acme",
                 "--set", f"datasets.synthetic.path={small_corpus}"]) == 0
    assert str(out) in capsys.readouterr().out
    files = LMFiles.open(out)
    cfg = load_config(None, [f"datasets.synthetic.path={small_corpus}"])
    train = [u.text for u in load_dataset("synthetic", cfg["datasets"]["synthetic"], "train").items]
    lexicon = files.read_lexicon()
    assert {w for t in train for w in t.split()} | {"acme"} == set(lexicon)
    assert lexicon["acme"] == ["a", "c", "m", "e"] and files.read_hotwords() == {"acme": 5.0}
    model = kenlm.Model(str(files.words_arpa))
    assert model.order == 3
    assert model.score(train[0]) > model.score(" ".join(reversed(train[0].split())))  # seen order is likelier
    assert kenlm.Model(str(files.chars_arpa)).order == 6


def test_transcriber_with_beam_search_uses_the_lexicon(tmp_path, lm_folder):
    from asr_poc.inference import Transcriber
    from asr_poc.plugins import get_model_class

    torch.manual_seed(0)
    model = get_model_class("conformer")({"vocab": TOKENIZER.vocab, "encoder_dim": 32, "num_heads": 2,
                                          "num_layers": 1, "ffn_dim": 64, "kernel_size": 3})
    audio = torch.randn(16000).numpy() * 0.1
    beam = Transcriber(model, decoding={"method": "beam", "lm_path": str(lm_folder), "word_score": 2.0})
    greedy_text = Transcriber(model).transcribe(audio, source_rate=16000).text
    text = beam.transcribe(audio, source_rate=16000).text
    assert set(text.split()) <= set(LMFiles.open(lm_folder).read_lexicon())
    assert text != greedy_text  # an untrained model's greedy output is not made of lexicon words


def test_test_tab_offers_beam_search_when_an_lm_exists(tmp_path, lm_folder):
    pytest.importorskip("ipywidgets")
    from asr_poc.decoding.beam import BeamSearchDecoder
    from asr_poc.decoding.lm import ENGLISH_LM, decoding_choices
    from asr_poc.paths import project_root
    from asr_poc.inference import Transcriber
    from asr_poc.plugins import get_model_class
    from asr_poc.ui.test_panel import TestPanel

    english = ["beam search + English word LM (real speech)"] if (project_root() / ENGLISH_LM / "words.arpa").is_file() \
        else []  # offered when `make run` has built it
    assert [label for label, _ in decoding_choices({"decoding": {"lm_path": str(tmp_path / "none")}})] == \
        ["greedy (fastest)", *english]
    panel = TestPanel(root=tmp_path, overrides=(f"decoding.lm_path={lm_folder}",), preload=False)
    try:
        labels = [label for label, _ in panel.decoding.options]
        assert labels[0].startswith("greedy") and "word LM" in labels[1] and "character LM" in labels[2]
        assert labels[3:] == english
        model = get_model_class("conformer")({"vocab": TOKENIZER.vocab, "encoder_dim": 32, "num_heads": 2,
                                              "num_layers": 1, "ffn_dim": 64, "kernel_size": 3})
        from asr_poc.app.recognition import RecognitionSession

        session = RecognitionSession(Transcriber(model))
        panel.decoding.value = 1
        chosen = session.with_decoding(panel._decoding_sections[panel.decoding.value])
        assert isinstance(chosen.transcriber.decoder, BeamSearchDecoder)
        panel.decoding.value = 0
        chosen = session.with_decoding(panel._decoding_sections[panel.decoding.value])
        assert not isinstance(chosen.transcriber.decoder, BeamSearchDecoder)
    finally:
        panel.close()
