"""The application layer: what a person does with the workbench, as typed calls that every face (the command line,
the dashboard, `asr-poc adapt`, the notebooks) uses and nothing else implements.

- `asr_poc.app.training`: start, resume, stop and follow a run, from a `RunRequest` (`app/run_request.py`),
  validated once into the run's config; the run lock and status belong here.
- `asr_poc.app.recognition`: recognise a file or a live stream with chosen decoding; the reference recognisers.
- `asr_poc.app.runs`: list runs and open one by its folder or id (the run browser, `asr-poc runs`).
- `asr_poc.app.evaluation`: score a checkpoint on a data set split, transcribe files (`asr-poc eval` / `transcribe`).
- `asr_poc.app.analysis`: an evaluation's per-utterance errors and confusions (the Runs tab's "Errors of a run").
- `asr_poc.app.comparison`: `asr-poc bench`, models side by side with the references.
- `asr_poc.app.data`: build the corpora, browse a data set, keep one's recordings (the Data and Record tabs).
- `asr_poc.app.language_models`, `asr_poc.app.export`: `asr-poc lm build`, `asr-poc export`.
- `asr_poc.app.settings`, `asr_poc.app.audio`: the config and folders, audio read at a model's rate.
The faces (the command line and the dashboard's panels) import nothing else of the package (pyproject.toml's
import contract).
Submodules are imported by name (`from asr_poc.app import recognition`), so importing the package loads no torch.
"""
