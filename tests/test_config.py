"""BertConfig: Google's bert_config.json format, presets and validation."""

import json
import warnings

import pytest

from keras_bert_impl import BertConfig

CONFIG_FILES = (
    "uncased_L-2_H-128_A-2_bert_config.json",
    "bert-base-uncased_bert_config.json",
    "bert-base-chinese_bert_config.json",
)


@pytest.mark.parametrize("filename", CONFIG_FILES)
def test_google_config_files_round_trip_unchanged(shared_data, tmp_path, filename):
    path = shared_data / "configs" / filename
    config = BertConfig.from_json_file(path)
    config.to_json_file(tmp_path / "bert_config.json")
    written = json.loads((tmp_path / "bert_config.json").read_text())
    assert written == json.loads(path.read_text())
    assert BertConfig.from_json_file(tmp_path / "bert_config.json") == config


def test_google_config_file_fields_are_read(shared_data):
    config = BertConfig.from_json_file(
        shared_data / "configs" / "uncased_L-2_H-128_A-2_bert_config.json"
    )
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads) == (2, 128, 2)
    assert (config.intermediate_size, config.vocab_size) == (512, 30522)
    assert config.extra == {}


def test_chinese_config_keeps_unused_pooler_keys_as_extra(shared_data):
    config = BertConfig.from_json_file(
        shared_data / "configs" / "bert-base-chinese_bert_config.json"
    )
    assert config.vocab_size == 21128
    assert config.extra["pooler_type"] == "first_token_transform"
    assert config.extra["directionality"] == "bidi"
    assert config.to_dict()["pooler_fc_size"] == 768


def test_dict_round_trip():
    config = BertConfig(vocab_size=99, hidden_size=64, num_hidden_layers=3, num_attention_heads=4)
    assert BertConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(
    "name, layers, hidden",
    [
        ("bert_tiny", 2, 128),
        ("bert_mini", 4, 256),
        ("bert_small", 4, 512),
        ("bert_medium", 8, 512),
        ("bert_base", 12, 768),
        ("bert_large", 24, 1024),
    ],
)
def test_presets_have_the_released_sizes(name, layers, hidden):
    config = BertConfig.from_preset(name)
    assert config.num_hidden_layers == layers
    assert config.hidden_size == hidden
    assert config.num_attention_heads == hidden // 64
    assert config.intermediate_size == 4 * hidden


def test_preset_overrides_fields():
    config = BertConfig.from_preset("bert_tiny", vocab_size=21128, hidden_dropout_prob=0.0)
    assert (config.vocab_size, config.hidden_dropout_prob, config.hidden_size) == (21128, 0.0, 128)


def test_unknown_preset_names_the_valid_ones():
    with pytest.raises(ValueError, match="bert_huge.*bert_tiny.*bert_large"):
        BertConfig.from_preset("bert_huge")


@pytest.mark.parametrize(
    "fields, message",
    [
        (
            {"hidden_size": 100, "num_attention_heads": 3},
            "hidden_size \\(100\\).*divisible.*\\(3\\)",
        ),
        ({"vocab_size": 0}, "vocab_size must be a positive integer, got 0"),
        ({"num_hidden_layers": -1}, "num_hidden_layers must be a positive integer"),
        ({"intermediate_size": 3072.0}, "intermediate_size must be a positive integer"),
        ({"max_position_embeddings": True}, "max_position_embeddings must be a positive integer"),
        ({"hidden_dropout_prob": 1.0}, "hidden_dropout_prob must be in \\[0, 1\\), got 1.0"),
        ({"attention_probs_dropout_prob": -0.1}, "attention_probs_dropout_prob must be in"),
        ({"initializer_range": 0}, "initializer_range must be a finite number > 0"),
        ({"initializer_range": float("nan")}, "initializer_range must be a finite number > 0"),
        ({"initializer_range": float("inf")}, "initializer_range must be a finite number > 0"),
        ({"hidden_act": "mish"}, "hidden_act 'mish'.*expected one of.*gelu"),
    ],
)
def test_invalid_fields_raise_errors_naming_the_field(fields, message):
    with pytest.raises(ValueError, match=message):
        BertConfig(**fields)


def test_bad_config_file_error_names_the_file(tmp_path):
    path = tmp_path / "bert_config.json"
    path.write_text('{"vocab_size": 100, "hidden_size": 100, "num_hidden_layers": 1, '
                    '"num_attention_heads": 3, "intermediate_size": 400}')
    with pytest.raises(ValueError, match="bert_config.json.*divisible"):
        BertConfig.from_json_file(path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="bert_config.json: not valid JSON"):
        BertConfig.from_json_file(path)


def test_a_config_file_without_a_size_is_an_error_not_bert_base(tmp_path):
    path = tmp_path / "bert_config.json"
    path.write_text('{"vocab_size": 100, "hidden_size": 64, "num_hidden_layer": 2, '
                    '"num_attention_heads": 2, "intermediate_size": 256}')
    with pytest.raises(ValueError, match=r"bert_config.json: missing num_hidden_layers "
                       r"\(misspelt\? 'num_hidden_layer' for 'num_hidden_layers'\)"):
        BertConfig.from_json_file(path)
    # type_vocab_size is a field of its own, not a misspelt vocab_size.
    path.write_text('{"type_vocab_size": 2, "hidden_size": 64, "num_hidden_layers": 2, '
                    '"num_attention_heads": 2, "intermediate_size": 256}')
    with pytest.raises(ValueError, match=r"missing vocab_size; a bert_config.json gives"):
        BertConfig.from_json_file(path)
    path.write_text("{}")
    with pytest.raises(ValueError, match="missing vocab_size, hidden_size, num_hidden_layers, "
                       "num_attention_heads, intermediate_size; a bert_config.json gives"):
        BertConfig.from_json_file(path)


def test_a_misspelt_optional_key_is_warned_about_and_pooler_keys_are_not():
    with pytest.warns(UserWarning, match=r"'hidden_dropout' is not a BERT hyperparameter and "
                      r"is ignored; did you mean 'hidden_dropout_prob'\?"):
        config = BertConfig.from_dict({"hidden_dropout": 0.0})
    assert config.hidden_dropout_prob == 0.1 and config.extra == {"hidden_dropout": 0.0}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        BertConfig.from_dict({"pooler_num_attention_heads": 12, "directionality": "bidi",
                              "layer_norm_eps": 1e-12, "model_type": "bert"})


def test_missing_config_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.json"):
        BertConfig.from_json_file(tmp_path / "nothing.json")
    with pytest.raises(IsADirectoryError, match="is a directory, expected a bert_config.json"):
        BertConfig.from_json_file(tmp_path)


def test_a_config_file_that_is_not_utf8_names_the_file(tmp_path):
    path = tmp_path / "bert_config.json"
    path.write_bytes(b'{"hidden_act": "g\xe9lu"}')
    with pytest.raises(ValueError, match="bert_config.json: not valid UTF-8"):
        BertConfig.from_json_file(path)
