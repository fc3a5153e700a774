"""Experiment (issue 11): per-utterance mean normalisation of log-mel, patched into LogMel for this process only.

    .venv/bin/python benchmarks/experiment_utterance_mean.py NAME --corpus DIR --steps 2250 [ablation.py options]
"""
import sys
import torch
import asr_poc.audio as audio

_orig = audio.LogMel.forward

def forward(self, waveforms, lengths):
    with torch.autocast(device_type=waveforms.device.type, enabled=False):
        feats = self.mel(waveforms.float()).clamp_min(1e-10).log10()  # (B, n_mels, frames)
    frames = self.frame_lengths(lengths)
    mask = (torch.arange(feats.shape[-1], device=feats.device)[None, :] < frames[:, None]).to(feats.dtype)
    mean = (feats * mask[:, None, :]).sum(-1, keepdim=True) / frames[:, None, None].clamp_min(1).to(feats.dtype)
    feats = (feats - mean) / 4.0
    if self.training and self.spec_augment:
        for _ in range(2):
            feats = self.freq_mask(feats)
            feats = self.time_mask(feats)
    return feats.transpose(1, 2), frames

audio.LogMel.forward = forward
sys.argv = ["ablation.py", *sys.argv[1:]]
from pathlib import Path
import runpy
runpy.run_path(str(Path(__file__).with_name("ablation.py")), run_name="__main__")
