"""Text normalization and the CTC tokenizer."""
from asr_poc.text import CharTokenizer, normalize_text


def test_normalize_text():
    assert normalize_text("Mr. Smith—paid, café-bar!  Don’t") == "mr smith paid cafe bar don't"


def test_tokenizer_round_trip_and_ctc_collapse():
    tok = CharTokenizer.from_texts(["hello world", "it's"])
    ids = tok.encode("Hello, world")
    assert tok.decode(ids) == "hello world"
    assert tok.blank_id == 0 and 0 not in ids
    h, e, l, o = (tok.vocab[c] for c in "helo")
    frames = [0, h, h, 0, e, l, 0, l, l, o, o, 0]
    assert tok.decode_ctc(frames) == "hello"  # blank between repeats keeps both l's


def test_unknown_characters_map_to_unk_not_crash():
    tok = CharTokenizer.from_texts(["abc"])
    assert tok.encode("abz") == [tok.vocab["a"], tok.vocab["b"], tok.vocab["<unk>"]]


# --- text of any script ------------------------------------------------------------------------------------------

ANY = {"script": "any", "keep": "letters+digits"}


def test_any_script_keeps_letters_marks_and_digits_of_every_script():
    from asr_poc.text import normalize_text

    assert normalize_text("नमस्ते, दुनिया!") == ""  # the default (English) keeps a-z only
    assert normalize_text("नमस्ते, दुनिया! १२३", ANY) == "नमस्ते दुनिया १२३"  # vowel signs and virama stay
    assert normalize_text("Привет, МИР — 2024 г.", ANY) == "привет мир 2024 г"
    assert normalize_text("東京は2024年です。", ANY) == "東京は2024年です"
    assert normalize_text("Ἀθῆναι café", {"script": "any"}) == "ἀθῆναι café"  # composed (NFC), accents kept
    assert normalize_text("Straße 7 ÉCOLE", {"script": "any", "lowercase": False}) == "Straße ÉCOLE"  # no digits
    assert normalize_text("room 101, Café", {"keep": "letters+digits"}) == "room 101 cafe"  # ASCII with digits
    assert normalize_text("\u0301a") == "a" and normalize_text(" \u0901x", ANY) == "x"  # a lone mark is dropped


def test_the_vocabulary_comes_from_the_training_texts_and_round_trips():
    from asr_poc.text import normalize_text

    texts = [normalize_text(t, ANY) for t in ("Привет, мир!", "नमस्ते दुनिया", "year 2024")]
    tok = CharTokenizer.from_texts(texts)
    assert {"п", "न", "्", "2", "y"} <= set(tok.vocab) and not {" ", ",", "!"} & set(tok.vocab)
    assert tok.text_config.script == "any" and tok.text_config.keep == "letters+digits"
    assert tok.decode(tok.encode("ПРИВЕТ, мир 2024!")) == "привет мир 2024"  # normalized as the vocabulary implies
    assert tok.decode(tok.encode("नमस्ते")) == "नमस्ते"
    assert tok.encode("мирж") == [tok.vocab[c] for c in "мир"] + [tok.vocab["<unk>"]]  # ж is not in the texts
    # from raw texts with the data set's settings: the same vocabulary
    assert CharTokenizer.from_texts(["Привет, мир!", "नमस्ते दुनिया", "year 2024"], ANY).vocab == tok.vocab


def test_old_ascii_vocabularies_normalize_as_before():
    tok = CharTokenizer.from_texts(["hello world", "it's"])  # what every checkpoint so far holds
    assert tok.text_config.model_dump() == {"lowercase": True, "keep": "letters", "script": "ascii"}
    assert tok.decode(tok.encode("Héllo, WORLD 42!")) == "hello world"


def test_a_checkpoint_keeps_a_vocabulary_of_any_script(tmp_path):
    from asr_poc.config import load_config
    from asr_poc.models.interface import BaseASRModel
    from asr_poc.plugins import get_model_class
    from asr_poc.text import normalize_text
    from conftest import TINY_MODEL

    tok = CharTokenizer.from_texts([normalize_text("Привет мир, नमस्ते 12", ANY)])
    cfg = load_config(None, TINY_MODEL, check_data=False)
    model = get_model_class("conformer")({**cfg["models"]["conformer"], "vocab": tok.vocab,
                                          "features": {"sample_rate": 16000, "n_fft": 400, "hop_length": 160,
                                                       "n_mels": 80}})
    model.save_checkpoint(tmp_path / "m.pt")
    loaded = BaseASRModel.from_checkpoint(tmp_path / "m.pt")
    assert loaded.tokenizer.vocab == tok.vocab and loaded.tokenizer.text_config.script == "any"
    assert loaded.tokenizer.decode(loaded.tokenizer.encode("МИР 12")) == "мир 12"


def test_a_data_set_normalizes_with_its_text_settings(tmp_path):
    import numpy as np
    import soundfile as sf

    from asr_poc.config import ConfigError, load_config
    from asr_poc.plugins import load_dataset

    (tmp_path / "wavs").mkdir()
    texts = {"a1": "Привет, мир! 2024", "a2": "नमस्ते दुनिया", "a3": "Grüße aus Köln."}
    for uid in texts:
        sf.write(str(tmp_path / "wavs" / f"{uid}.wav"), np.zeros(8000, np.float32), 16000)
    (tmp_path / "metadata.csv").write_text("".join(f"{u}|{t}|{t}\n" for u, t in texts.items()), encoding="utf-8")
    (tmp_path / "splits.csv").write_text("".join(f"{u}|train\n" for u in texts))
    base = [f"datasets.ljspeech.path={tmp_path}", "dataset=ljspeech"]
    cfg = load_config(None, [*base, "datasets.ljspeech.text={script: any, keep: letters+digits}"])
    ds = load_dataset("ljspeech", cfg["datasets"]["ljspeech"], "train")
    assert sorted(ds.texts()) == sorted(["привет мир 2024", "नमस्ते दुनिया", "grüße aus köln"])
    assert ds[0]["text"] in ds.texts()
    assert {"ü", "ß", "п", "न", "2"} <= set(CharTokenizer.from_texts(ds.texts()).vocab)
    default = load_dataset("ljspeech", load_config(None, base)["datasets"]["ljspeech"], "train")
    assert sorted(default.texts()) == ["", "", "gru e aus koln"]  # the default: a-z only, exactly as before
    try:
        load_config(None, [*base, "datasets.ljspeech.text.script=klingon"])
        raise AssertionError("a wrong script is refused")
    except ConfigError as err:
        assert len(err.problems) == 1 and err.problems[0].startswith("datasets.ljspeech.text.script = 'klingon'")


def test_streamed_greedy_ctc_equals_the_whole_sequence_at_any_split():
    tokenizer = CharTokenizer.from_texts(["ab ba"])
    a, b, blank = tokenizer.encode("a")[0], tokenizer.encode("b")[0], tokenizer.blank_id
    ids = [blank, a, a, blank, a, b, b, blank, blank, b]  # a a b b: a repeat split by a blank is two letters
    whole = tokenizer.decode_ctc(ids)
    assert whole == "aabb"
    for split in range(len(ids) + 1):
        tokens: list[int] = []
        last = tokenizer.extend_ctc(ids[:split], tokens, blank)
        tokenizer.extend_ctc(ids[split:], tokens, last)
        assert tokenizer.decode(tokens) == whole, split
