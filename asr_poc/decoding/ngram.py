"""An n-gram language model estimated with interpolated Kneser-Ney smoothing, written in the ARPA format.

Small and exact (Chen & Goodman 1998, "interpolated Kneser-Ney" with one discount per order):

    p(w | h) = max(c(h w) - D_n, 0) / c(h .)  +  gamma(h) * p(w | h'),     gamma(h) = D_n * N1+(h .) / c(h .)

where h' is h without its first word, c is the raw count at the highest order and, below it, the continuation
count N1+(. g) (how many distinct words precede g; n-grams starting with `<s>` keep their raw count, as in KenLM),
and D_n = n1 / (n1 + 2 n2) from the counts-of-counts of order n (0.5 when either is zero). Unigrams are interpolated
with the uniform distribution over the vocabulary (every word seen, `</s>` and `<unk>`), so no word, `<unk>`
included, gets probability zero. An interpolated model is a back-off model whose back-off weight is gamma(h),
which is what ARPA stores: KenLM, flashlight and SRILM read the file and give exactly these probabilities.
"""
from __future__ import annotations

import math
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from ..io import atomic_write_text

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
NEVER = -99.0  # log10 "probability" ARPA files give <s> (it is only ever a context)

Gram = tuple[str, ...]


@dataclass
class NGramModel:
    """Probabilities (natural, not log) of every n-gram kept, and back-off weights of every context."""

    order: int
    prob: list[dict[Gram, float]] = field(default_factory=list)  # prob[n-1][gram]
    backoff: dict[Gram, float] = field(default_factory=dict)
    discounts: list[float] = field(default_factory=list)

    def probability(self, word: str, context: Sequence[str] = ()) -> float:
        """p(word | context) by the back-off rule (what an ARPA reader computes); for tests and checks."""
        context = tuple(context)[-(self.order - 1):] if self.order > 1 else ()
        weight = 1.0
        while True:
            gram = context + (word,)
            if gram in self.prob[len(gram) - 1]:
                return weight * self.prob[len(gram) - 1][gram]
            if not context:
                return weight * self.prob[0][(UNK,)]
            weight *= self.backoff.get(context, 1.0)
            context = context[1:]


def _discount(counts: Iterable[int]) -> float:
    histogram = Counter(c for c in counts if c in (1, 2))
    n1, n2 = histogram[1], histogram[2]
    return n1 / (n1 + 2 * n2) if n1 and n2 else 0.5


def estimate(sentences: Iterable[Sequence[str]], order: int = 3) -> NGramModel:
    """Estimate an interpolated Kneser-Ney model of `order` from tokenised sentences (lists of words)."""
    if order < 1:
        raise ValueError(f"n-gram order must be at least 1, got {order}")
    raw: list[Counter] = [Counter() for _ in range(order)]
    for sentence in sentences:
        tokens = [BOS, *sentence, EOS]
        for n in range(1, order + 1):
            for i in range(len(tokens) - n + 1):
                gram = tuple(tokens[i : i + n])
                if gram != (BOS,):
                    raw[n - 1][gram] += 1
    if not raw[0]:
        raise ValueError("no text to estimate a language model from")
    # counts used at each order: raw at the highest, continuation counts below (raw for grams starting with <s>)
    counts: list[Counter] = [Counter() for _ in range(order)]
    counts[order - 1] = raw[order - 1]
    for n in range(order - 1, 0, -1):
        for gram in raw[n]:  # each distinct (n+1)-gram adds one left extension to its suffix
            counts[n - 1][gram[1:]] += 1
        for gram, c in raw[n - 1].items():
            if gram[0] == BOS:
                counts[n - 1][gram] = c
    model = NGramModel(order=order, discounts=[_discount(c.values()) for c in counts])
    totals: list[dict[Gram, list[int]]] = []  # per order: context -> [sum of counts, distinct followers]
    for n in range(1, order + 1):
        per_context: dict[Gram, list[int]] = defaultdict(lambda: [0, 0])
        for gram, c in counts[n - 1].items():
            entry = per_context[gram[:-1]]
            entry[0] += c
            entry[1] += 1
        totals.append(per_context)
    vocabulary = sorted({g[0] for g in counts[0]} | {EOS, UNK})
    total, types = totals[0][()]
    d = model.discounts[0]
    uniform = d * types / total / len(vocabulary)
    model.prob.append({(w,): max(counts[0][(w,)] - d, 0) / total + uniform for w in vocabulary})
    for n in range(2, order + 1):
        d = model.discounts[n - 1]
        probs: dict[Gram, float] = {}
        for context, (total, types) in totals[n - 1].items():
            model.backoff[context] = d * types / total
        for gram, c in counts[n - 1].items():
            context = gram[:-1]
            lower = model.probability(gram[-1], gram[1:-1]) if n > 2 else model.prob[0][gram[-1:]]
            probs[gram] = (c - d) / totals[n - 1][context][0] + model.backoff[context] * lower
        model.prob.append(probs)
    return model


def _log10(p: float) -> str:
    return f"{math.log10(p):.7f}"


def arpa_text(model: NGramModel) -> str:
    """The model in the ARPA format (log10 probabilities and back-off weights); `<s>` gets -99 as usual."""
    sections = []
    grams_per_order = [sorted(model.prob[0]) + [(BOS,)]] + [sorted(p) for p in model.prob[1:]]
    header = ["", "\\data\\"] + [f"ngram {n + 1}={len(g)}" for n, g in enumerate(grams_per_order)]
    for n, grams in enumerate(grams_per_order, start=1):
        lines = [f"\\{n}-grams:"]
        for gram in grams:
            prob = f"{NEVER:.1f}" if gram == (BOS,) else _log10(model.prob[n - 1][gram])
            line = f"{prob}\t{' '.join(gram)}"
            if n < model.order and gram in model.backoff:
                line += f"\t{_log10(model.backoff[gram])}"
            lines.append(line)
        sections.append("\n".join(lines))
    return "\n".join(header) + "\n\n" + "\n\n".join(sections) + "\n\n\\end\\\n"


def write_arpa(model: NGramModel, path: str | os.PathLike) -> None:
    """Write the ARPA file atomically."""
    atomic_write_text(path, arpa_text(model))
