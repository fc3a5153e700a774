"""Hot words: a KenLM word model whose score for chosen words is raised (a `CTCDecoderLM` for flashlight).

flashlight's lexicon decoder asks the LM for a word's score each time a hypothesis completes a word. This LM
answers with KenLM's log10 probability (as flashlight's built-in KenLM does) plus the word's boost, so a hot word
(a name, a product) wins over a similar-sounding common word unless the audio clearly says otherwise. The boost is
scaled by `lm_weight` like the LM. Python-side, so a little slower than the built-in KenLM; used only when hot
words are set.
"""
from __future__ import annotations

import os

from torchaudio.models.decoder import CTCDecoderLM, CTCDecoderLMState


class HotwordLM(CTCDecoderLM):
    """KenLM (`arpa`) over `words` (the decoder's word index -> word) plus `hotwords[word]` for hot words."""

    def __init__(self, arpa: str | os.PathLike, words: list[str], hotwords: dict[str, float]):
        import kenlm

        CTCDecoderLM.__init__(self)
        self._kenlm = kenlm
        self.model = kenlm.Model(str(arpa))
        self.words = list(words)
        self.bonus = [float(hotwords.get(w, 0.0)) for w in self.words]
        self.states: dict[CTCDecoderLMState, object] = {}  # decoder state -> KenLM state
        self.scores: dict[CTCDecoderLMState, float] = {}

    def start(self, start_with_nothing: bool = False) -> CTCDecoderLMState:
        self.states.clear()  # states of the previous utterance are no longer used
        self.scores.clear()
        state = CTCDecoderLMState()
        k = self._kenlm.State()
        if start_with_nothing:
            self.model.NullContextWrite(k)
        else:
            self.model.BeginSentenceWrite(k)
        self.states[state] = k
        return state

    def _advance(self, state: CTCDecoderLMState, index: int, word: str, bonus: float) -> tuple[CTCDecoderLMState, float]:
        out = state.child(index)
        if out not in self.scores:
            k = self._kenlm.State()
            self.scores[out] = self.model.BaseScore(self.states[state], word, k) + bonus
            self.states[out] = k
        return out, self.scores[out]

    def score(self, state: CTCDecoderLMState, usr_token_idx: int) -> tuple[CTCDecoderLMState, float]:
        return self._advance(state, usr_token_idx, self.words[usr_token_idx], self.bonus[usr_token_idx])

    def finish(self, state: CTCDecoderLMState) -> tuple[CTCDecoderLMState, float]:
        return self._advance(state, -1, "</s>", 0.0)
