"""`python -m asr_poc ...` is the `asr-poc` command."""
import sys

from .cli import main

sys.exit(main())
