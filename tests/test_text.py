"""Text normalisation and the CTC tokenizer."""
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
