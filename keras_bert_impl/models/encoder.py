"""BertEncoder: the BERT Transformer encoder as a functional Keras model."""

import contextlib
import os

import keras
import tensorflow as tf

# Keras has no public way to enter the scope its __call__ opens.
from keras.src.backend import AutocastScope, get_autocast_scope

from keras_bert_impl.config import BertConfig
from keras_bert_impl.layers.embeddings import BertEmbeddings
from keras_bert_impl.layers.transformer_block import TransformerBlock
from keras_bert_impl.models.frozen_layers import freeze_layer_paths, frozen_layer_paths

INPUT_NAMES = ("input_word_ids", "input_mask", "input_type_ids")
LAYER_NORM_EPSILON = 1e-12


@keras.saving.register_keras_serializable(package="keras_bert_impl")
class BertEncoder(keras.Model):
    """The original BERT encoder: embeddings, post-LN Transformer blocks, tanh pooler.

    Inputs are TF Hub's dict of int32 [batch, seq] tensors; outputs are float32
    (also under mixed precision): `sequence_output` [batch, seq, hidden],
    `pooled_output` [batch, hidden] (tanh dense on [CLS]) and `encoder_outputs`
    (one [batch, seq, hidden] per block). Variables keep the original
    checkpoint shapes; `google_variable_map()` gives their TF1 names.

    `dtype` (a Keras dtype policy, e.g. "mixed_bfloat16"; default the global one) sets
    the layers' precision. Freeze with `trainable=False` or by setting sublayers'
    `trainable` after construction; `frozen_layers` (paths such as
    "transformer/layer_0", which `get_config` records) is how a saved model's frozen
    sublayers come back frozen, so `.keras` files keep them.

    ```python
    encoder = BertEncoder(BertConfig.from_preset("bert_tiny"))
    out = encoder({"input_word_ids": ids, "input_mask": mask, "input_type_ids": types})
    out["pooled_output"]  # [batch, 128]
    ```
    """

    def __init__(self, config: BertConfig | dict, **kwargs):
        if isinstance(config, dict):
            config = BertConfig.from_dict(config)
        dtype = kwargs.pop("dtype", None)
        trainable = kwargs.pop("trainable", True)
        frozen_layers = kwargs.pop("frozen_layers", ())

        # === Layers ===
        embedding_layer = BertEmbeddings(
            vocab_size=config.vocab_size,
            hidden_size=config.hidden_size,
            max_position_embeddings=config.max_position_embeddings,
            type_vocab_size=config.type_vocab_size,
            dropout=config.hidden_dropout_prob,
            initializer_range=config.initializer_range,
            layer_norm_epsilon=LAYER_NORM_EPSILON,
            dtype=dtype,
            name="embeddings",
        )
        transformer_layers = [
            TransformerBlock(
                hidden_size=config.hidden_size,
                num_heads=config.num_attention_heads,
                intermediate_size=config.intermediate_size,
                activation=config.hidden_act,
                hidden_dropout=config.hidden_dropout_prob,
                attention_dropout=config.attention_probs_dropout_prob,
                initializer_range=config.initializer_range,
                layer_norm_epsilon=LAYER_NORM_EPSILON,
                dtype=dtype,
                name=f"layer_{i}",
            )
            for i in range(config.num_hidden_layers)
        ]
        pooler_layer = keras.layers.Dense(
            config.hidden_size,
            activation="tanh",
            kernel_initializer=keras.initializers.TruncatedNormal(stddev=config.initializer_range),
            dtype=dtype,
            name="pooler",
        )

        # === Functional model ===
        inputs = {
            name: keras.Input(shape=(None,), dtype="int32", name=name) for name in INPUT_NAMES
        }
        x = embedding_layer(inputs["input_word_ids"], inputs["input_type_ids"])
        encoder_outputs = []
        for block in transformer_layers:
            x = block(x, inputs["input_mask"])
            encoder_outputs.append(x)
        pooled = pooler_layer(x[:, 0, :])
        outputs = {
            "sequence_output": keras.ops.cast(x, "float32"),
            "pooled_output": keras.ops.cast(pooled, "float32"),
            "encoder_outputs": [keras.ops.cast(y, "float32") for y in encoder_outputs],
        }
        super().__init__(inputs=inputs, outputs=outputs, dtype=dtype, **kwargs)
        if dtype is not None:
            # A functional model ignores `dtype`; keep it so that get_config (and
            # heads built on `encoder.dtype_policy`) see the layers' policy.
            self.dtype_policy = keras.dtype_policies.get(dtype)

        # === Config ===
        self.config = config
        self.embedding_layer = embedding_layer
        self.transformer_layers = transformer_layers
        self.pooler_layer = pooler_layer
        # Set once the layers are tracked: the functional constructor applies
        # `trainable` before, where it would freeze nothing.
        if not trainable:
            self.trainable = False
        freeze_layer_paths(self, frozen_layers)

    def sequence_output_at(self, inputs: dict, positions: tf.Tensor,
                           training: bool | None = None) -> tf.Tensor:
        """`sequence_output` at `positions` [batch, Q] only: [batch, Q, hidden], compute dtype.

        Equals gathering `self(inputs)["sequence_output"]` at `positions`, with the last
        block run only there: it still needs every token's keys and values, but its
        queries, attention output and feed-forward network only at Q of the seq rows,
        which saves most of a block. Heads that read a few positions use it: the
        pooler ([CLS]) and the masked-LM head.
        """
        with self._autocast_scope():
            x = self.embedding_layer(inputs["input_word_ids"], inputs["input_type_ids"],
                                     training=training)
            *blocks, last = self.transformer_layers
            for block in blocks:
                x = block(x, inputs["input_mask"], training=training)
            return last(x, inputs["input_mask"], training=training, query_positions=positions)

    def _autocast_scope(self):
        """The autocast scope `self(...)` would run its layers in, for calls past `__call__`.

        Without it a mixed encoder inside a float32 model would read the embedding
        tables in the compute dtype, which the embedding layer keeps out of its scope.
        """
        current = get_autocast_scope()
        if (current is not None and current.dtype != self.compute_dtype) or (
                current is None and self.compute_dtype != self.variable_dtype):
            return AutocastScope(self.compute_dtype)
        return contextlib.nullcontext()

    def pool(self, cls_output: tf.Tensor) -> tf.Tensor:
        """`pooled_output` from the last block's [CLS] output [batch, hidden]: float32."""
        return keras.ops.cast(self.pooler_layer(cls_output), "float32")

    def pooled_output(self, inputs: dict, training: bool | None = None) -> tf.Tensor:
        """`pooled_output` alone, the last block computed only at [CLS] (`sequence_output_at`)."""
        cls_position = tf.zeros([tf.shape(inputs["input_word_ids"])[0], 1], tf.int32)
        return self.pool(self.sequence_output_at(inputs, cls_position, training)[:, 0, :])

    def export(self, filepath: str | os.PathLike, format: str = "tf_saved_model",
               **kwargs) -> None:
        """`keras.Model.export` of the id inputs to `sequence_output` and `pooled_output`.

        A serving signature cannot carry the `encoder_outputs` list, so it is left
        out. `kbi.export_saved_model` exports with the tokenizer inside (text in).
        """
        outputs = {name: tensor for name, tensor in self.output.items()
                   if name != "encoder_outputs"}
        keras.Model(self.input, outputs).export(filepath, format=format, **kwargs)

    def get_embedding_table(self) -> keras.Variable:
        """The word-embedding table [vocab, hidden], shared with the masked-LM decoder."""
        return self.embedding_layer.word_embeddings

    def google_variable_map(self) -> dict[str, keras.Variable]:
        """The original TF1 checkpoint name of every variable (`bert/...`)."""
        embeddings = self.embedding_layer
        names = {
            "bert/embeddings/word_embeddings": embeddings.word_embeddings,
            "bert/embeddings/token_type_embeddings": embeddings.token_type_embeddings,
            "bert/embeddings/position_embeddings": embeddings.position_embeddings,
            "bert/embeddings/LayerNorm/gamma": embeddings.layer_norm.gamma,
            "bert/embeddings/LayerNorm/beta": embeddings.layer_norm.beta,
        }
        for i, block in enumerate(self.transformer_layers):
            scope = f"bert/encoder/layer_{i}"
            attention = block.attention
            dense_layers = {
                "attention/self/query": attention.query,
                "attention/self/key": attention.key,
                "attention/self/value": attention.value,
                "attention/output/dense": attention.output_dense,
                "intermediate/dense": block.intermediate,
                "output/dense": block.output_dense,
            }
            for name, layer in dense_layers.items():
                names[f"{scope}/{name}/kernel"] = layer.kernel
                names[f"{scope}/{name}/bias"] = layer.bias
            for name, layer in {
                "attention/output/LayerNorm": attention.layer_norm,
                "output/LayerNorm": block.output_layer_norm,
            }.items():
                names[f"{scope}/{name}/gamma"] = layer.gamma
                names[f"{scope}/{name}/beta"] = layer.beta
        names["bert/pooler/dense/kernel"] = self.pooler_layer.kernel
        names["bert/pooler/dense/bias"] = self.pooler_layer.bias
        return names

    def get_config(self) -> dict:
        return {
            "config": self.config.to_dict(),
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.saving.serialize_keras_object(self.dtype_policy),
            # Frozen embeddings, blocks, pooler or their sublayers ("layer_0/attention").
            "frozen_layers": frozen_layer_paths(self),
        }

    @classmethod
    def from_config(cls, config: dict, custom_objects=None) -> "BertEncoder":
        config = dict(config)
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.saving.deserialize_keras_object(config["dtype"])
        return cls(**config)
