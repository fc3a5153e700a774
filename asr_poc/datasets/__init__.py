"""Speech corpora; `asr_poc.datasets.<name>` is found by the plugin loader."""
