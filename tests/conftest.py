"""Shared fixtures: paths to ../shared/data and tiny configurations."""

import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

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
