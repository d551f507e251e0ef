"""BertClassifier: a class for each text or text pair, from the pooled [CLS] output."""

import keras

from keras_bert_impl.layers.dropout import BertDropout
from keras_bert_impl.layers.logits_head import LogitsHead
from keras_bert_impl.models.encoder import INPUT_NAMES, BertEncoder
from keras_bert_impl.models.task_model import BertTaskModel


@keras.saving.register_keras_serializable(package="keras_bert_impl")
class BertClassifier(BertTaskModel):
    """Sentence (or sentence-pair) classification as the original `run_classifier.py`.

    Dropout on the pooled output, then float32 `logits` [batch, num_classes]
    from `output_weights` [num_classes, hidden] and `output_bias`, the
    original checkpoint names. `dropout` defaults to the encoder's
    `hidden_dropout_prob`.

    ```python
    classifier = BertClassifier(encoder, num_classes=2)
    classifier.compile(optimizer=create_optimizer(2e-5, 1000, 100),
                       loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    classifier.fit(classification_dataset(data, label_ids, preprocessor, batch_size=32))
    ```
    """

    def __init__(self, encoder: keras.Model, num_classes: int, dropout: float | None = None,
                 **kwargs):
        # === Layers ===
        config = encoder.config
        rate = config.hidden_dropout_prob if dropout is None else dropout
        # float32 as the head: under a mixed policy it would round the head's input.
        dropout_layer = BertDropout(rate, dtype="float32", name="pooled_dropout")
        head = LogitsHead(
            num_classes, initializer_range=config.initializer_range, dtype="float32",
            name="logits",
        )

        # === Functional model ===
        inputs = {name: keras.Input(shape=(None,), dtype="int32", name=name)
                  for name in INPUT_NAMES}
        pooled = encoder(inputs)["pooled_output"]
        logits = head(dropout_layer(pooled))
        super().__init__(inputs=inputs, outputs=logits, **kwargs)

        # === Config ===
        self.encoder = encoder
        self.dropout_layer = dropout_layer
        self.head = head
        self.num_classes = num_classes
        self.dropout = dropout

    def call(self, inputs, training=None, mask=None):
        inputs = self.checked_inputs(inputs, INPUT_NAMES)
        if type(self.encoder) is not BertEncoder:
            return super().call(inputs, training=training, mask=mask)
        # The functional graph's result; the pooled output needs the last block only
        # at [CLS] (`BertEncoder.pooled_output`).
        pooled = self.encoder.pooled_output(inputs, training=training)
        return self.head(self.dropout_layer(pooled, training=training))

    def google_variable_map(self) -> dict[str, keras.Variable]:
        """The encoder's names plus `output_weights`/`output_bias`, as `run_classifier.py`."""
        return {
            **self.encoder.google_variable_map(),
            "output_weights": self.head.output_weights,
            "output_bias": self.head.output_bias,
        }

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "dropout": self.dropout,
        }
