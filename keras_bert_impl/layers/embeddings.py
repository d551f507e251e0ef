"""BERT's input embeddings: word + position + segment, then LayerNorm and dropout."""

import keras
import tensorflow as tf

from keras_bert_impl.layers.dropout import BertDropout


def _lookup(table, ids):
    """`tf.gather(table, ids)` whose gradient is the dense table, not IndexedSlices.

    With a dense gradient every optimizer runs plain (non-lazy) Adam on the tables, as
    the original's (TF1 densified the gradient) and as on TPUs, on any strategy: Keras'
    own optimizers otherwise update the moments of only the rows gathered in a step.
    Replicas all-reduce it at a fixed shape; the rows of an IndexedSlices gradient are
    all-gathered with a shape that follows the batch, which one collective instance
    inside a multi-step loop (`steps_per_execution`) cannot take when a partial last
    batch follows a full one ("Shape mismatch in the collective instance").
    """
    return _gather_with_dense_gradient(tf.convert_to_tensor(table), ids)


@tf.custom_gradient
def _gather_with_dense_gradient(table, ids):
    def gradient(upstream):
        rows = tf.reshape(upstream, [-1, tf.shape(table)[1]])
        dense = tf.math.unsorted_segment_sum(rows, tf.reshape(ids, [-1]), tf.shape(table)[0])
        return tf.cast(dense, table.dtype), None

    return tf.gather(table, ids), gradient


@keras.saving.register_keras_serializable(package="keras_bert_impl")
class BertEmbeddings(keras.layers.Layer):
    """Sums the word, position and token-type (segment) embeddings, as `bert/embeddings`.

    The tables keep the original names and shapes (`word_embeddings` [vocab,
    hidden], `token_type_embeddings` [type_vocab, hidden], `position_embeddings`
    [max_positions, hidden]); a sequence shorter than `max_position_embeddings`
    uses the first rows of the position table.

    ```python
    embeddings = BertEmbeddings(vocab_size=30522, hidden_size=768)
    x = embeddings(input_word_ids, input_type_ids)  # [batch, seq, hidden]
    ```
    """

    def __init__(
        self,
        vocab_size: int,
        hidden_size: int,
        max_position_embeddings: int = 512,
        type_vocab_size: int = 2,
        dropout: float = 0.1,
        initializer_range: float = 0.02,
        layer_norm_epsilon: float = 1e-12,
        **kwargs,
    ):
        super().__init__(**kwargs)
        # The tables stay float32 and only the gathered rows are cast, instead
        # of casting the whole [vocab, hidden] table every step.
        self.autocast = False
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.max_position_embeddings = max_position_embeddings
        self.type_vocab_size = type_vocab_size
        self.dropout = dropout
        self.initializer_range = initializer_range
        self.layer_norm_epsilon = layer_norm_epsilon
        self.layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=self.dtype_policy, name="LayerNorm"
        )
        self.dropout_layer = BertDropout(dropout, dtype=self.dtype_policy, name="dropout")

    def build(self, input_word_ids_shape, input_type_ids_shape=None):
        def initializer():
            # One instance per table: an unseeded Keras initializer called twice returns
            # the same values, which would make each table a copy of the other's first rows.
            return keras.initializers.TruncatedNormal(stddev=self.initializer_range)

        self.word_embeddings = self.add_weight(
            shape=(self.vocab_size, self.hidden_size),
            initializer=initializer(),
            name="word_embeddings",
        )
        self.token_type_embeddings = self.add_weight(
            shape=(self.type_vocab_size, self.hidden_size),
            initializer=initializer(),
            name="token_type_embeddings",
        )
        self.position_embeddings = self.add_weight(
            shape=(self.max_position_embeddings, self.hidden_size),
            initializer=initializer(),
            name="position_embeddings",
        )
        self.layer_norm.build((None, None, self.hidden_size))
        self.built = True

    def call(self, input_word_ids, input_type_ids, training=None):
        if isinstance(input_word_ids, tf.RaggedTensor) or isinstance(input_type_ids,
                                                                       tf.RaggedTensor):
            raise TypeError(
                "BERT takes padded int32 [batch, seq] tensors, not ragged ones (as "
                "BertTokenizer.tokenize gives): pack them with BertPreprocessor, which adds "
                "[CLS]/[SEP], input_mask and input_type_ids, or pad them with .to_tensor()")
        seq_length = input_word_ids.shape[1]
        message = f"exceeds max_position_embeddings ({self.max_position_embeddings})"
        if seq_length is not None and seq_length > self.max_position_embeddings:
            raise ValueError(f"Sequence length {seq_length} {message}.")
        if seq_length is None:  # known only when the graph runs (not checked under XLA)
            tf.debugging.assert_less_equal(
                tf.shape(input_word_ids)[1], self.max_position_embeddings,
                message=f"The sequence length {message}")
        x = _lookup(self.word_embeddings, input_word_ids)
        x += _lookup(self.token_type_embeddings, input_type_ids)
        x += self.position_embeddings[tf.newaxis, : tf.shape(input_word_ids)[1]]
        x = self.layer_norm(tf.cast(x, self.compute_dtype))
        return self.dropout_layer(x, training=training)

    def compute_output_shape(self, input_word_ids_shape, input_type_ids_shape=None):
        return (*input_word_ids_shape, self.hidden_size)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "max_position_embeddings": self.max_position_embeddings,
            "type_vocab_size": self.type_vocab_size,
            "dropout": self.dropout,
            "initializer_range": self.initializer_range,
            "layer_norm_epsilon": self.layer_norm_epsilon,
        }
