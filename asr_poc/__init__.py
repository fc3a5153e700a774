"""asr-poc: a workbench for training, testing and comparing fast speech-recognition models."""
from .plugins import register_dataset, register_model

__version__ = "0.1.0"
__all__ = ["register_model", "register_dataset", "__version__"]
