"""Shared fixtures: paths to ../shared/data and tiny configurations."""

import json
import os
import pathlib
import subprocess

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest

# ../shared/data beside the checkout, as on CI; KBI_SHARED_DATA names another place.
SHARED_DATA = pathlib.Path(os.environ.get(
    "KBI_SHARED_DATA", pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> pathlib.Path:
    """The real files in ../shared/data; tests that need them skip without them."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA} (CI keeps it beside the clone; "
                    "KBI_SHARED_DATA=DIR names another place)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def uncased_vocab(shared_data) -> str:
    return str(shared_data / "vocab" / "bert-base-uncased.txt")


@pytest.fixture(scope="session")
def cased_vocab(shared_data) -> str:
    return str(shared_data / "vocab" / "bert-base-cased.txt")


@pytest.fixture(scope="session")
def chinese_vocab(shared_data) -> str:
    return str(shared_data / "vocab" / "bert-base-chinese.txt")


@pytest.fixture
def bert_export(uncased_vocab, tmp_path):
    """Runs `bert-export`'s main in this process with these flags (its flags defined
    meanwhile) into tmp_path/export, at --seq_length=32; returns that export base."""
    from absl import flags

    from keras_bert_impl.cli import export

    before = set(flags.FLAGS)
    export.define_flags()

    def run(*args):
        flags.FLAGS(["bert-export", f"--vocab_file={uncased_vocab}",
                     f"--export_dir={tmp_path / 'export'}", "--seq_length=32", *args])
        export.main([])
        return str(tmp_path / "export")

    yield run
    flags.FLAGS.unparse_flags()
    for name in set(flags.FLAGS) - before:
        delattr(flags.FLAGS, name)


@pytest.fixture(scope="session")
def tf_2_12_python() -> str:
    """A Python with tensorflow-cpu==2.12.0 and tensorflow-text==2.12.0, the kernels of the
    oldest TensorFlow Serving the exports support. It cannot sit beside the package's own
    TensorFlow, so tests that use it are opt-in:

        python -m venv /tmp/tf212
        /tmp/tf212/bin/pip install tensorflow-cpu==2.12.0 tensorflow-text==2.12.0
        KBI_TF_2_12_PYTHON=/tmp/tf212/bin/python pytest
    """
    python = os.environ.get("KBI_TF_2_12_PYTHON")
    if not python:
        pytest.skip("set KBI_TF_2_12_PYTHON to a Python with tensorflow-cpu==2.12.0 and "
                    "tensorflow-text==2.12.0 to run exports under TensorFlow Serving 2.12's "
                    "kernels")
    result = subprocess.run(
        [python, "-c", ("import tensorflow as tf, tensorflow_text as text; "
                        "print(tf.__version__, text.__version__)")],
        capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "PYTHONPATH": "", "TF_CPP_MIN_LOG_LEVEL": "2"})
    versions = result.stdout.split()
    assert result.returncode == 0 and len(versions) == 2, result.stderr[-2000:]
    assert all(v.startswith("2.12.") for v in versions), \
        f"KBI_TF_2_12_PYTHON has tensorflow {versions[0]}, tensorflow-text {versions[1]}"
    return python


@pytest.fixture()
def tiny_config(tmp_path):
    """A one-layer bert_config.json with BERT's dropout, whose masks a resumed run must
    continue (their seed states are in the training checkpoint)."""
    config = {"vocab_size": 30522, "hidden_size": 32, "num_hidden_layers": 1,
              "num_attention_heads": 2, "intermediate_size": 64, "hidden_act": "gelu",
              "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
              "max_position_embeddings": 64, "type_vocab_size": 2, "initializer_range": 0.02}
    path = tmp_path / "bert_config.json"
    path.write_text(json.dumps(config))
    return str(path)
