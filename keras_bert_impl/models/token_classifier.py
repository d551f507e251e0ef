"""BertTokenClassifier: a label for every token (NER), from the sequence output."""

import keras

from keras_bert_impl.layers.dropout import BertDropout
from keras_bert_impl.layers.logits_head import LogitsHead
from keras_bert_impl.models.encoder import INPUT_NAMES
from keras_bert_impl.models.task_model import BertTaskModel


@keras.saving.register_keras_serializable(package="keras_bert_impl")
class BertTokenClassifier(BertTaskModel):
    """Token classification: float32 `logits` [batch, seq, num_classes].

    Dropout on the sequence output, then `output_weights` [num_classes,
    hidden] and `output_bias`. The original BERT release has no NER script;
    the checkpoint names follow the widely used TF1 `run_ner.py` of
    kyzhouhzau/BERT-NER, which stores its head the same way as
    `run_classifier.py`. Train with word tags on each word's first wordpiece
    and sample weight 0 elsewhere (`keras_bert_impl.data.ner.ner_dataset`).

    ```python
    tagger = BertTokenClassifier(encoder, num_classes=len(tags))
    # The mean over labelled positions: a plain mean would divide by the padding too.
    tagger.compile(optimizer=create_optimizer(5e-5, 1000, 100),
                   loss=keras.losses.SparseCategoricalCrossentropy(
                       from_logits=True, reduction="mean_with_sample_weight"))
    tagger.fit(ner_dataset(inputs, labels, batch_size=32))
    ```
    """

    reads_pooled_output = False

    def __init__(self, encoder: keras.Model, num_classes: int, dropout: float | None = None,
                 **kwargs):
        # === Layers ===
        config = encoder.config
        rate = config.hidden_dropout_prob if dropout is None else dropout
        # float32 as the head: under a mixed policy it would round the head's input.
        dropout_layer = BertDropout(rate, dtype="float32", name="sequence_dropout")
        head = LogitsHead(
            num_classes, initializer_range=config.initializer_range, dtype="float32",
            name="logits",
        )

        # === Functional model ===
        inputs = {name: keras.Input(shape=(None,), dtype="int32", name=name)
                  for name in INPUT_NAMES}
        sequence = encoder(inputs)["sequence_output"]
        logits = head(dropout_layer(sequence))
        super().__init__(inputs=inputs, outputs=logits, **kwargs)

        # === Config ===
        self.encoder = encoder
        self.head = head
        self.num_classes = num_classes
        self.dropout = dropout

    def google_variable_map(self) -> dict[str, keras.Variable]:
        """The encoder's names plus `output_weights`/`output_bias` (BERT-NER's `run_ner.py`)."""
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
