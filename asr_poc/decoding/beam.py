"""CTC beam search with an n-gram language model (torchaudio's flashlight decoder), beside greedy decoding.

Two decoders with one method, `transcribe(model, waveforms, lengths) -> list[str]`:

- `DecodingOptions` (`asr_poc.config`): the one pydantic model of the choices.
- `GreedyDecoder`: the model's own `transcribe` (one argmax pass; the default).
- `BeamSearchDecoder`: `torchaudio.models.decoder.ctc_decoder` over the model's CTC log-probabilities.
  With a lexicon (`decoding.lexicon: true`, the default) it only outputs words of the lexicon and scores them
  with the word n-gram (`words.arpa`); lexicon-free it outputs any character string, scored per character
  with `chars.arpa` (or with no LM when `decoding.lm_path` is null). `lm_weight` scales the LM's log10
  score, `word_score` is added per word. Hot words (`decoding.hotwords`, and the LM folder's `hotwords.txt`)
  join the lexicon and get `weight` added to their LM score (`hotwords.HotwordLM`); the lexicon decoder only.

Streaming partials stay greedy (a chunk's text is final when shown); `Transcriber.transcribe` uses the choice.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Optional

import torch

from ..config import DecodingOptions
from ..text import BLANK, UNK, WORD_DELIMITER, CharTokenizer
from .emissions import ctc_log_probs
from .lm import LMError, LMFiles, parse_hotwords


class GreedyDecoder:
    """The model's own greedy decoding."""

    options = DecodingOptions()

    def transcribe(self, model, waveforms: torch.Tensor, lengths: torch.Tensor) -> list[str]:
        return model.transcribe(waveforms.to(model.device), lengths.to(model.device))


class BeamSearchDecoder:
    """Beam search over CTC log-probabilities for one vocabulary (build one per model; reuse it across calls)."""

    def __init__(self, tokenizer: CharTokenizer, options: DecodingOptions):
        from torchaudio.models.decoder import ctc_decoder

        self.tokenizer, self.options = tokenizer, options
        if getattr(tokenizer, "subword", False):
            raise LMError("beam search with a character or word LM needs a character CTC head; this model has a "
                          "sub-word (BPE) head: use greedy decoding")
        tokens = sorted(tokenizer.vocab, key=tokenizer.vocab.get)
        if [tokenizer.vocab[t] for t in tokens] != list(range(len(tokens))) or WORD_DELIMITER not in tokens:
            raise LMError(f"beam search needs a character vocabulary with ids 0..N-1 and {WORD_DELIMITER!r} "
                          f"between words")
        from ..paths import resolve_path

        files = LMFiles.open(resolve_path(options.lm_path)) if options.lm_path else None
        hotwords = {**(files.read_hotwords() if files else {}),
                    **parse_hotwords(options.hotwords, options.hotword_weight)}
        if options.lexicon and files is None:
            raise LMError("decoding.lexicon needs decoding.lm_path (the lexicon is in the LM folder); set "
                          "decoding.lexicon=false for lexicon-free beam search")
        if hotwords and not options.lexicon:
            raise LMError("hot words need the lexicon decoder (decoding.lexicon=true)")
        self.lexicon_words: list[str] = []
        with tempfile.TemporaryDirectory() as tmp:
            lexicon_path = None
            if options.lexicon:
                lexicon_path = self._write_lexicon(files, hotwords, set(tokens), Path(tmp) / "lexicon.txt")
            lm, lm_dict = None, None
            if files is not None and options.lexicon:
                lm = str(files.words_arpa)
                if hotwords:
                    from .hotwords import HotwordLM

                    lm = HotwordLM(files.words_arpa, self.lexicon_words, hotwords)
            elif files is not None:
                lm, lm_dict = str(files.chars_arpa), Path(tmp) / "tokens.txt"
                # the LM's word index must be the token index (torchaudio's own dictionary is in hash order)
                lm_dict.write_text("".join(f"{t}\n" for t in tokens), encoding="utf-8")
                lm_dict = str(lm_dict)
            self.decoder = ctc_decoder(
                lexicon=lexicon_path, tokens=tokens, lm=lm, lm_dict=lm_dict, beam_size=options.beam_size,
                beam_threshold=options.beam_threshold, lm_weight=options.lm_weight, word_score=options.word_score,
                blank_token=BLANK, sil_token=WORD_DELIMITER, unk_word=UNK)

    def _write_lexicon(self, files: LMFiles, hotwords: dict[str, float], tokens: set[str], path: Path) -> str:
        """The LM folder's lexicon plus the hot words, keeping words the model can spell (in the decoder's order)."""
        words = {**files.read_lexicon(), **{w: list(w) for w in hotwords}}
        kept = {w: s for w, s in words.items() if set(s) <= tokens}
        if not kept:
            raise LMError(f"no word of {files.lexicon} can be spelled with this model's characters")
        path.write_text("".join(f"{w} {' '.join(s)}\n" for w, s in kept.items()), encoding="utf-8")
        from flashlight.lib.text.dictionary import create_word_dict, load_words

        word_dict = create_word_dict(load_words(str(path)))  # the index order the decoder will use
        self.lexicon_words = [word_dict.get_entry(i) for i in range(word_dict.index_size())]
        return str(path)

    def decode(self, log_probs: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> list[str]:
        """Log-probabilities (B, frames, vocab) and frame lengths -> the best text of each utterance."""
        emissions = log_probs.detach().float().cpu().contiguous()
        frames = None if lengths is None else lengths.detach().to(torch.int32).cpu()
        texts = []
        for nbest in self.decoder(emissions, frames):
            if not nbest:
                texts.append("")
            elif self.options.lexicon:
                texts.append(" ".join(nbest[0].words))
            else:
                texts.append(" ".join(self.tokenizer.decode(nbest[0].tokens.tolist()).split()))
        return texts

    def transcribe(self, model, waveforms: torch.Tensor, lengths: torch.Tensor) -> list[str]:
        log_probs, frames = ctc_log_probs(model, waveforms, lengths)
        return self.decode(log_probs, frames)


Decoder = GreedyDecoder | BeamSearchDecoder


def make_decoder(tokenizer: CharTokenizer, options: Optional[DecodingOptions | dict] = None) -> Decoder:
    """The decoder `options` ask for (a `DecodingOptions` or the config's `decoding` section)."""
    if not isinstance(options, DecodingOptions):
        options = DecodingOptions.from_dict(options)
    if options.method == "greedy":
        return GreedyDecoder()
    if options.method != "beam":
        raise LMError(f"decoding.method = {options.method!r}: must be greedy or beam")
    return BeamSearchDecoder(tokenizer, options)


class DecodedModel:
    """A model seen through a decoder: `transcribe(waveforms, lengths)` as the model's, for speed measurements."""

    def __init__(self, model, decoder: Decoder):
        self.model, self.decoder = model, decoder

    def __getattr__(self, name: str):
        return getattr(self.model, name)

    def eval(self) -> "DecodedModel":
        self.model.eval()
        return self

    def transcribe(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> list[str]:
        return self.decoder.transcribe(self.model, waveforms, lengths)


def decoded_model(model, section: Optional[dict | DecodingOptions]) -> tuple[object, DecodingOptions]:
    """The model seen through the config's `decoding` section (the model itself when greedy), and the options:
    what `asr-poc eval` and `asr-poc bench` score and time."""
    options = section if isinstance(section, DecodingOptions) else DecodingOptions.from_dict(section)
    if options.method == "greedy":
        return model, options
    return DecodedModel(model, make_decoder(model.tokenizer, options)), options
