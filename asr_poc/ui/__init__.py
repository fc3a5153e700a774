"""Jupyter widgets of the workbench: training panel, run browser, test panel, microphone recorder, dashboard.

Everything here follows run folders (`asr_poc.runs`), so widgets in any number of kernels show the same
runs; nothing is pushed from the training loop.
"""
