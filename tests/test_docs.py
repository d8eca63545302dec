"""docs/config_reference.md is generated from the config classes (python -m eqnn.docs) and kept up to date."""

import dataclasses

from eqnn.docs import REFERENCE, attribute_docs, main, reference_text
from eqnn.studies.compression_config import CompressionSearchConfig
from eqnn.study import StudyConfig
from eqnn.training.config import SeedsConfig, TrainingConfig, TrainRunConfig


def test_committed_reference_is_up_to_date():
    assert REFERENCE.read_text() == reference_text(), "docs/config_reference.md is stale: run python -m eqnn.docs"
    assert main(["--check"]) == 0


def test_every_key_of_every_table_is_documented():
    skip = {TrainRunConfig: {"scenario", "seeds", "data", "training", "models"}, StudyConfig: {"train", "compression"}}
    for cls in (TrainRunConfig, SeedsConfig, TrainingConfig, CompressionSearchConfig, StudyConfig):
        docs = attribute_docs(cls)
        for f in dataclasses.fields(cls):
            if f.name not in skip.get(cls, ()):
                assert docs.get(f.name), f"{cls.__name__}.{f.name} has no Attributes: entry"
    text = reference_text()
    assert "| `cache_dir` |" in text and "<out>/cache" in text and "| `weight_bits` |" in text


def test_check_reports_a_stale_file(tmp_path, capsys):
    stale = tmp_path / "ref.md"
    stale.write_text("# old\n")
    assert main(["--check", "--out", str(stale)]) == 1
    assert "out of date" in capsys.readouterr().err
    assert main(["--out", str(stale)]) == 0 and main(["--check", "--out", str(stale)]) == 0
