"""The command-line tools can live in one process: flags are defined when a tool starts."""

import importlib

from absl import flags

TOOLS = ("vocab", "export", "pretrain", "quickstart", "finetune", "create_pretraining_data")


def test_importing_every_tool_defines_no_flags_and_nothing_collides():
    before = set(flags.FLAGS)
    for tool in TOOLS:
        importlib.import_module(f"keras_bert_impl.cli.{tool}")
    assert set(flags.FLAGS) == before


def test_a_tool_defines_its_flags_once_at_start_up():
    before = set(flags.FLAGS)
    export = importlib.import_module("keras_bert_impl.cli.export")
    export.define_flags()
    export.define_flags()
    try:
        assert {"vocab_file", "export_dir", "lower_case"} <= set(flags.FLAGS)
    finally:
        for name in set(flags.FLAGS) - before:
            delattr(flags.FLAGS, name)
