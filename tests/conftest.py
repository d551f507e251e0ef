"""Shared fixtures: paths to ../shared/data and tiny configurations."""

import json
import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest

SHARED_DATA = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> pathlib.Path:
    """The real files in ../shared/data; tests that need them skip without them."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA} (CI keeps it beside the clone)")
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
