"""The files in export/ that the tensorflow/serving image reads, checked as it reads them."""

import pathlib
import re

from absl import flags
from google.protobuf import text_format

from keras_bert_impl.serving import model_server
from keras_bert_impl.serving.batching_parameters import (
    BatchingParametersProto,
    read_batching_parameters,
)
from keras_bert_impl.serving.model_config import read_model_config_file

EXPORT = pathlib.Path(__file__).resolve().parents[1] / "export"


def test_models_config_is_one_tensorflow_serving_starts_with():
    # Checked as TF Serving checks it (platform, absolute base path); no version labels,
    # which it refuses at start-up.
    configs = read_model_config_file(str(EXPORT / "models.config"))
    assert [(c.name, c.base_path) for c in configs] == [("bert", "/models/bert")]
    assert not any(c.version_labels for c in configs)


def test_batching_parameters_pad_tokenized_requests_of_different_lengths():
    """TF Serving merges serving_tokenized requests of any length and fails the merged
    batch when they differ and padding is off (batching_session.cc)."""
    proto = text_format.Parse((EXPORT / "batching_parameters.txt").read_text(),
                              BatchingParametersProto())
    assert proto.pad_variable_length_inputs
    options = read_batching_parameters(str(EXPORT / "batching_parameters.txt"))
    assert options.allowed_batch_sizes[-1] == options.max_batch_size


def test_the_compose_file_passes_only_tensorflow_model_server_flags():
    compose = (EXPORT / "docker-compose.yml").read_text()
    flags_given = re.findall(r"^\s+- --(\w+)", compose, flags=re.MULTILINE)
    assert "model_config_file" in flags_given and "batching_parameters_file" in flags_given
    # The development server defines tensorflow_model_server's flags; --host is its own.
    server_flags = flags.FlagValues()
    model_server.define_flags(server_flags)
    assert all(name in server_flags and name != "host" for name in flags_given)
    mounted = re.findall(r"- \./(\S+):/config/(\S+):ro", compose)
    assert {(local, inside) for local, inside in mounted} == {
        ("models.config", "models.config"), ("batching_parameters.txt", "batching_parameters.txt")}
    assert all((EXPORT / local).exists() for local, _ in mounted)
