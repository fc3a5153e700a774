"""The plugin loader finds models and data sets from all four sources, and names the known ones otherwise."""
import textwrap
from importlib.metadata import EntryPoint

import pytest

from asr_poc import plugins
from asr_poc.models.conformer import ConformerCTC
from asr_poc.models.interface import BaseASRModel
from asr_poc.plugins import available, PluginNotFound, get_dataset_class, get_model_class, register_model

PLUGIN_SOURCE = textwrap.dedent('''
    from asr_poc.models.conformer import ConformerCTC

    class FolderModel(ConformerCTC):
        """A model that lives in a plugin folder."""

    MODEL = FolderModel
''')


def test_package_module_by_name():
    assert get_model_class("conformer") is ConformerCTC
    assert get_dataset_class("synthetic").__name__ == "SyntheticDataset"
    assert get_dataset_class("ljspeech").__name__ == "LJSpeechDataset"


def test_runtime_registration_with_decorator():
    @register_model("notebook-model")
    class NotebookModel(ConformerCTC):
        pass

    assert get_model_class("notebook-model") is NotebookModel
    assert "notebook-model" in plugins.available("models")


def test_plugin_folder_from_config(tmp_path):
    (tmp_path / "folder_model.py").write_text(PLUGIN_SOURCE)
    plugins.add_plugin_paths([str(tmp_path)])
    cls = get_model_class("folder_model")
    assert cls.__name__ == "FolderModel" and issubclass(cls, BaseASRModel)


def test_entry_point(monkeypatch, tmp_path):
    (tmp_path / "third_party_asr.py").write_text(PLUGIN_SOURCE.replace("FolderModel", "ThirdPartyModel"))
    monkeypatch.syspath_prepend(str(tmp_path))
    ep = EntryPoint(name="third-party", value="third_party_asr:ThirdPartyModel", group="asr_poc.models")
    monkeypatch.setattr(plugins, "entry_points", lambda group: [ep] if group == "asr_poc.models" else [])
    assert get_model_class("third-party").__name__ == "ThirdPartyModel"
    assert "third-party" in plugins.available("models")


def test_unknown_name_lists_the_names_that_exist():
    with pytest.raises(PluginNotFound) as info:
        get_model_class("whisper-large")
    message = str(info.value)
    assert "unknown model 'whisper-large'" in message and "conformer" in message
    names = set(available("models"))
    assert {"conformer", "hf-ctc", "rnn-t", "whisper", "whisper-ctc"} <= names
    assert not names & {"features", "spec", "streaming", "whisper_encoder", "rnnt", "hf_ctc"}, \
        "the names the registry holds, not its helper modules or module spellings"
    assert "real-check" in available("datasets") and "bucketing" not in available("datasets")
    with pytest.raises(PluginNotFound, match="available: .*synthetic"):
        get_dataset_class("timit")
