"""The recognition half of the application layer: one decoder for files and streams, sessions, references."""
from pathlib import Path

import numpy as np
import pytest

from asr_poc.runs import Run

BEAM = {"method": "beam", "lexicon": False, "lm_weight": 0.0, "beam_size": 8}  # beam search without an LM


def utterance(corpus: Path) -> np.ndarray:
    from asr_poc.audio import load_audio

    first = (corpus / "metadata.csv").read_text().splitlines()[0].split("|")[0]
    return load_audio(corpus / "wavs" / f"{first}.wav", 16000)


def test_a_stream_ends_in_the_text_the_same_samples_get_as_a_file_with_the_chosen_decoder(tiny_run: Run,
                                                                                          small_corpus: Path):
    from asr_poc.app.recognition import open_session

    session = open_session(tiny_run.last_checkpoint, BEAM)
    calls = []
    decoder = session.transcriber.decoder
    original = decoder.transcribe
    decoder.transcribe = lambda *a: calls.append(a[1].shape) or original(*a)
    samples = utterance(small_corpus)
    from_file = session.transcribe(samples).text
    live = session.open_stream(source_rate=16000)
    pcm = (samples * 32767).astype(np.int16)
    for start in range(0, len(pcm), 1600):  # 100-ms chunks, as the browser sends them
        live.feed(pcm[start : start + 1600])
    final = live.finish()
    assert final.is_final and len(calls) == 2, "the file and the stream's final text both went through the decoder"
    assert calls[0] == calls[1] and np.allclose(live.audio, (pcm / 32768).astype(np.float32))
    assert final.text == session.with_decoding(BEAM).transcribe(live.audio).text
    assert live.compute_seconds >= final.compute_seconds > 0
    assert isinstance(from_file, str)


def test_greedy_streams_do_not_run_a_second_decoder(tiny_run: Run, small_corpus: Path):
    from asr_poc.app.recognition import open_session

    session = open_session(tiny_run.last_checkpoint)  # greedy
    samples = utterance(small_corpus)
    live = session.open_stream()
    live.feed(samples)
    assert live.finish().text == session.transcribe(samples).text


def test_sessions_share_a_loaded_model_and_reload_a_changed_file(tiny_run: Run, tmp_path: Path):
    import os
    import shutil

    from asr_poc.app.recognition import SessionCache

    path = tmp_path / "copy.pt"
    shutil.copy(tiny_run.last_checkpoint, path)
    cache = SessionCache()
    greedy, beam = cache.get(path), cache.get(path, BEAM)
    assert greedy.transcriber.model is beam.transcriber.model and beam.decoding.method == "beam"
    assert cache.get(path) is greedy
    os.utime(path, (1, 1))
    assert cache.get(path).transcriber.model is not greedy.transcriber.model


def test_bad_decoding_options_are_refused_with_the_field_named(tiny_run: Run):
    from pydantic import ValidationError

    from asr_poc.app.recognition import open_session

    with pytest.raises(ValidationError, match="beam_size"):
        open_session(tiny_run.last_checkpoint, {"method": "beam", "beam_size": 0})


def test_compare_runs_the_references_on_the_same_clip_and_a_broken_one_keeps_its_row(tiny_run: Run,
                                                                                     small_corpus: Path,
                                                                                     monkeypatch):
    from asr_poc.app import recognition
    from asr_poc.references import PocketSphinx

    samples = utterance(small_corpus)
    session = recognition.open_session(tiny_run.last_checkpoint)
    rows = recognition.compare(samples, 16000, others=[("a", session)], references=["pocketsphinx"])
    assert [r.name for r in rows] == ["a", "PocketSphinx (reference)"]
    assert rows[0].text == session.transcribe(samples).text
    assert rows[1].text == PocketSphinx().transcribe(samples) and rows[1].rtf > 0
    class Broken:
        label = "broken (reference)"

        def __call__(self, samples):
            return 1 / 0

    monkeypatch.setitem(recognition._REFERENCES, "pocketsphinx", Broken())
    rows = recognition.compare(samples, 16000, references=["pocketsphinx"])
    assert rows[0].error.startswith("ZeroDivisionError")
