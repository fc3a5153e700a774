"""Greedy transducer search over a whole batch at once.

All utterances step together over encoder frames: one joiner call per (frame, symbol) for the whole batch, and one
predictor call for the whole batch whose result only the rows that emitted keep. A row whose frames have ended, or
that chose blank, keeps its predictor output and LSTM state (`torch.where` by row), so each row follows exactly the
path of the one-utterance search (`EmformerRNNT.greedy`): at each frame, up to `max_symbols` non-blank tokens until
blank. The symbol loop of a frame ends when no row emits (one host sync a step); token ids reach the host once.
"""
from __future__ import annotations

import torch
from torchaudio.models.rnnt import RNNT


def _keep_rows(mask: torch.Tensor, new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """`new` where `mask` (B,) is true, else `old`; tensors (B, ...)."""
    return torch.where(mask.view(-1, *([1] * (new.dim() - 1))), new, old)


def greedy_batch(model: RNNT, enc: torch.Tensor, lengths: torch.Tensor, blank: int, max_symbols: int
                 ) -> list[list[int]]:
    """Encoder frames (B, T, D) with `lengths` (B,) valid frames -> each row's greedy token ids."""
    batch, device = enc.shape[0], enc.device
    ones = torch.ones(batch, dtype=torch.long, device=device)
    out, _, state = model.predict(torch.full((batch, 1), blank, dtype=torch.long, device=device), ones, None)
    predictor_out = out[:, 0]  # (B, D): the predictor's output after each row's last token
    joiner = model.joiner
    chosen, emitted = [], []  # per search step: each row's argmax (B,) and whether it was emitted (B,)
    valid = torch.arange(enc.shape[1], device=device)[:, None] < lengths.to(device)[None, :]  # (T, B)
    for t in range(int(lengths.max()) if batch else 0):
        frame, emitting = enc[:, t], valid[t]
        for _ in range(max_symbols):
            best = joiner.linear(joiner.activation(frame + predictor_out)).argmax(-1)  # (B,)
            emitting = emitting & (best != blank)
            if not bool(emitting.any()):  # the one host sync of a step
                break
            chosen.append(best)
            emitted.append(emitting)
            out, _, new_state = model.predict(best[:, None], ones, state)
            predictor_out = _keep_rows(emitting, out[:, 0], predictor_out)
            state = [[_keep_rows(emitting, n, o) for n, o in zip(new_layer, old_layer)]
                     for new_layer, old_layer in zip(new_state, state)]
    if not chosen:
        return [[] for _ in range(batch)]
    ids, keep = torch.stack(chosen, 1).tolist(), torch.stack(emitted, 1).tolist()  # (B, steps), in time order
    return [[i for i, k in zip(row_ids, row_keep) if k] for row_ids, row_keep in zip(ids, keep)]
