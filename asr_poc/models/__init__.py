"""Speech-recognition models; `asr_poc.models.<name>` is found by the plugin loader."""
