"""`--model_config_file` and `--model_name`/`--model_base_path`: the ModelConfigs to serve,
checked as TF Serving checks them at start-up and on HandleReloadConfigRequest."""

import re
from collections.abc import Iterable

import tensorflow as tf
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from keras_bert_impl.data.text_files import read_utf8

# What reads these files in production; it fails on a UTF-8 byte-order mark.
TEXT_PROTO_PARSER = "TensorFlow Serving's text-proto parser"


def read_model_config_file(path: str) -> list[model_server_config_pb2.ModelConfig]:
    """Parses a `--model_config_file` (text-format ModelServerConfig)."""
    config = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(read_utf8(path, bom_refused_by=TEXT_PROTO_PARSER), config)
    except text_format.ParseError as error:
        raise ValueError(f"{path}: not a valid ModelServerConfig text proto: {error}") from None
    if config.WhichOneof("config") != "model_config_list":
        raise ValueError(f"{path}: expected a model_config_list {{ config {{ ... }} }}")
    return check_model_configs(config.model_config_list.config, source=path)


def _is_relative_path(path: str) -> bool:
    """TF Serving's UriIsRelativePath: no scheme (gs://, file://, ...; TensorFlow's
    io::ParseURI) and not absolute."""
    return not re.match(r"[a-zA-Z][0-9a-zA-Z.]*://", path) and not path.startswith("/")


def check_model_configs(configs: Iterable[model_server_config_pb2.ModelConfig],
                        source: str) -> list[model_server_config_pb2.ModelConfig]:
    """The configs of a ModelConfigList as a list; ValueError naming `source` for what TF
    Serving refuses too: a config without a name or base path, a name listed twice, no
    model_platform or one other than TensorFlow, a relative base path."""
    models = list(configs)
    names = set()
    for index, model in enumerate(models):
        if not model.name or not model.base_path:
            raise ValueError(f"{source}: config #{index} needs both `name` and `base_path`")
        if model.name in names:
            # TF Serving's wording; merging the two silently would serve only the last.
            raise ValueError(f"{source}: Illegal to list model {model.name} multiple times in "
                             "config list")
        names.add(model.name)
        if model.model_type and model.model_platform:
            raise ValueError(f"{source}: model {model.name!r}: Illegal setting both "
                             "ModelServerConfig::model_type (deprecated) and "
                             "ModelServerConfig::model_platform")
        platform = model.model_platform or (
            "tensorflow" if model.model_type == model_server_config_pb2.TENSORFLOW else "")
        if not platform:
            raise ValueError(f"{source}: model {model.name!r}: Illegal setting neither "
                             "ModelServerConfig::model_type (deprecated) nor "
                             'ModelServerConfig::model_platform; add model_platform: "tensorflow"')
        if platform != "tensorflow":
            raise ValueError(f"{source}: model {model.name!r} has model_platform "
                             f"{platform!r}; only 'tensorflow' is served")
        if _is_relative_path(model.base_path):
            raise ValueError(f"{source}: Expected model {model.name} to have an absolute path "
                             f"or URI; got base_path()={model.base_path}")
    return models


def check_base_paths(configs: list[model_server_config_pb2.ModelConfig]) -> None:
    """ValueError for a base path that exists but is not a directory (a file)."""
    for config in configs:
        if tf.io.gfile.exists(config.base_path) and not tf.io.gfile.isdir(config.base_path):
            raise ValueError(f"model {config.name!r}: base_path {config.base_path} is not "
                             "a directory")


def single_model_config(name: str, base_path: str) -> model_server_config_pb2.ModelConfig:
    """The config `--model_name`/`--model_base_path` stand for."""
    return model_server_config_pb2.ModelConfig(
        name=name, base_path=base_path, model_platform="tensorflow")
