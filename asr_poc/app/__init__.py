"""The application layer: what a person does with the workbench, as typed calls that every face (the command line,
the dashboard, `asr-poc adapt`, the notebooks) uses and nothing else implements.

- `asr_poc.app.training`: start, resume, stop and follow a run, from a `RunRequest` (`app/run_request.py`),
  validated once into the run's config; the run lock and status belong here.
- `asr_poc.app.recognition`: recognise a file or a live stream with chosen decoding; the reference recognisers.
Submodules are imported by name (`from asr_poc.app import recognition`), so importing the package loads no torch.
"""
