"""BertConfig: the hyperparameters of a BERT encoder, in Google's bert_config.json format."""

import dataclasses
import difflib
import json
import os
import warnings
from typing import Any

import tensorflow as tf

from keras_bert_impl.layers.activations import ACTIVATIONS

# Sizes of the released BERT family (Turc et al. 2019 and the original paper):
# preset name -> (num_hidden_layers, hidden_size). Heads = H / 64, FFN = 4H.
PRESETS: dict[str, tuple[int, int]] = {
    "bert_tiny": (2, 128),
    "bert_mini": (4, 256),
    "bert_small": (4, 512),
    "bert_medium": (8, 512),
    "bert_base": (12, 768),
    "bert_large": (24, 1024),
}

_POSITIVE_INTS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "max_position_embeddings",
    "type_vocab_size",
)
_DROPOUTS = ("hidden_dropout_prob", "attention_probs_dropout_prob")
# The sizes of the weights: a config file without one would get BERT-Base's silently.
_REQUIRED_IN_FILES = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                      "intermediate_size")


@dataclasses.dataclass(frozen=True)
class BertConfig:
    """The encoder's hyperparameters, with the field names of Google's bert_config.json.

    Defaults are BERT-Base, uncased vocabulary. Keys of a config file that are
    not BERT encoder hyperparameters (the Chinese and multilingual releases
    carry `directionality` and `pooler_*` keys that the original modeling code
    never reads) are kept in `extra` so that `to_json_file` writes them back (keys
    sorted, indented by 2); the model ignores them.

    ```python
    config = BertConfig.from_json_file("uncased_L-12_H-768_A-12/bert_config.json")
    tiny = BertConfig.from_preset("bert_tiny", vocab_size=21128)
    ```
    """

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    extra: dict[str, Any] = dataclasses.field(default_factory=dict, compare=False)

    def __post_init__(self):
        for name in _POSITIVE_INTS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"BertConfig.{name} must be a positive integer, got {value!r}.")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"BertConfig.hidden_size ({self.hidden_size}) must be divisible by "
                f"num_attention_heads ({self.num_attention_heads})."
            )
        for name in _DROPOUTS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
                raise ValueError(f"BertConfig.{name} must be in [0, 1), got {value!r}.")
        if (
            isinstance(self.initializer_range, bool)
            or not isinstance(self.initializer_range, (int, float))
            or not 0 < self.initializer_range < float("inf")  # NaN fails too
        ):
            raise ValueError(
                f"BertConfig.initializer_range must be a finite number > 0, "
                f"got {self.initializer_range!r}."
            )
        if not isinstance(self.hidden_act, str) or self.hidden_act.lower() not in ACTIVATIONS:
            raise ValueError(
                f"BertConfig.hidden_act {self.hidden_act!r} is not a known activation; "
                f"expected one of {sorted(ACTIVATIONS)}."
            )

    @property
    def attention_head_size(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def to_dict(self) -> dict[str, Any]:
        """The bert_config.json content: the hyperparameters, then any extra keys."""
        fields = {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"
        }
        return {**fields, **self.extra}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "BertConfig":
        """Builds a config from a bert_config.json dict; unknown keys go to `extra`,
        with a warning for one that looks like a misspelt hyperparameter."""
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {k: v for k, v in values.items() if k in names}
        extra = {k: v for k, v in values.items() if k not in names}
        for key in extra:
            if not key.startswith("pooler_") and (match := _misspelt(key, names - set(known))):
                warnings.warn(f"bert_config key {key!r} is not a BERT hyperparameter and is "
                              f"ignored; did you mean {match!r}?", stacklevel=2)
        return cls(**known, extra=extra)

    @classmethod
    def from_json_file(cls, path: str | os.PathLike) -> "BertConfig":
        """Reads Google's bert_config.json format (local or `gs://` paths)."""
        path = os.fspath(path)
        if not tf.io.gfile.exists(path):
            raise FileNotFoundError(f"{path}: BERT config file not found.")
        if tf.io.gfile.isdir(path):
            raise IsADirectoryError(f"{path}: is a directory, expected a bert_config.json file.")
        try:
            with tf.io.gfile.GFile(path, "rb") as f:
                values = json.loads(f.read().decode("utf-8"))
        except UnicodeDecodeError as e:
            raise ValueError(f"{path}: not valid UTF-8 ({e.reason} at byte {e.start}).") from e
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e}).") from e
        if not isinstance(values, dict):
            raise ValueError(  # noqa: TRY004 (the file's content is bad, not an argument)
                f"{path}: expected a JSON object of BERT hyperparameters.")
        if missing := [name for name in _REQUIRED_IN_FILES if name not in values]:
            fields = {f.name for f in dataclasses.fields(cls)}
            misspelt = [f"{key!r} for {match!r}" for key in values
                        if key not in fields and (match := _misspelt(key, set(missing)))]
            raise ValueError(
                f"{path}: missing {', '.join(missing)}"
                + (f" (misspelt? {', '.join(misspelt)})" if misspelt else "")
                + f"; a bert_config.json gives every one of {', '.join(_REQUIRED_IN_FILES)}.")
        try:
            return cls.from_dict(values)
        except (ValueError, TypeError) as e:
            raise ValueError(f"{path}: {e}") from e

    def to_json_file(self, path: str | os.PathLike) -> None:
        """Writes Google's bert_config.json format (local or `gs://` paths)."""
        with tf.io.gfile.GFile(os.fspath(path), "w") as f:
            f.write(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> "BertConfig":
        """A config of the released BERT family by size, e.g. "bert_tiny" (L2/H128).

        Heads are hidden_size / 64 and the FFN is 4 * hidden_size; any field
        can be overridden, e.g. `vocab_size`.
        """
        if name not in PRESETS:
            raise ValueError(f"Unknown BERT preset {name!r}; expected one of {list(PRESETS)}.")
        layers, hidden = PRESETS[name]
        values = {
            "num_hidden_layers": layers,
            "hidden_size": hidden,
            "num_attention_heads": hidden // 64,
            "intermediate_size": 4 * hidden,
        }
        return cls(**{**values, **overrides})


def _misspelt(key: str, names: set[str]) -> str | None:
    """The name `key` is a likely misspelling of, if any."""
    matches = difflib.get_close_matches(key, sorted(names), n=1, cutoff=0.8)
    return matches[0] if matches else None
