"""BertSpanLabeler: start and end logits of an answer span (extractive QA, SQuAD)."""

import keras

from keras_bert_impl.layers.logits_head import LogitsHead
from keras_bert_impl.models.encoder import INPUT_NAMES
from keras_bert_impl.models.task_model import BertTaskModel


@keras.saving.register_keras_serializable(package="keras_bert_impl")
class BertSpanLabeler(BertTaskModel):
    """Extractive QA as the original `run_squad.py`: two logits per token.

    Returns float32 `start_logits` and `end_logits` [batch, seq] from
    `cls/squad/output_weights` [2, hidden] and `cls/squad/output_bias`
    (no dropout on the sequence output, as the original). Train with
    sparse cross-entropy on each, weighted 0.5 (the original's mean).

    ```python
    qa = BertSpanLabeler(encoder)
    qa.compile(optimizer=create_optimizer(3e-5, 1000, 100),
               loss={"start_logits": loss, "end_logits": loss},
               loss_weights={"start_logits": 0.5, "end_logits": 0.5})
    qa.fit(squad_dataset(features, batch_size=32))
    ```
    """

    reads_pooled_output = False

    def __init__(self, encoder: keras.Model, **kwargs):
        # === Layers ===
        head = LogitsHead(
            2, initializer_range=encoder.config.initializer_range, dtype="float32",
            name="squad_logits",
        )

        # === Functional model ===
        inputs = {name: keras.Input(shape=(None,), dtype="int32", name=name)
                  for name in INPUT_NAMES}
        logits = head(encoder(inputs)["sequence_output"])
        outputs = {"start_logits": logits[..., 0], "end_logits": logits[..., 1]}
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)

        # === Config ===
        self.encoder = encoder
        self.head = head

    def google_variable_map(self) -> dict[str, keras.Variable]:
        """The encoder's names plus `cls/squad/output_weights`/`output_bias`."""
        return {
            **self.encoder.google_variable_map(),
            "cls/squad/output_weights": self.head.output_weights,
            "cls/squad/output_bias": self.head.output_bias,
        }
