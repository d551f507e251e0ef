"""`BertTaskModel`: the shared base of models built on a `BertEncoder`."""

import keras

from keras_bert_impl.training.strategy import jit_compile_under


class BertTaskModel(keras.Model):
    """A functional model over `self.encoder` that serializes by its constructor arguments.

    Subclasses set `self.encoder` and extend `get_config()` with their own
    arguments; the encoder is stored as a nested Keras object and rebuilt
    before the subclass constructor runs.
    """

    def compile(self, *args, jit_compile: bool | str = "auto", **kwargs):
        """`keras.Model.compile`, with XLA left off where the strategy cannot run it."""
        super().compile(*args, jit_compile=jit_compile_under(self.distribute_strategy, jit_compile),
                        **kwargs)

    def get_config(self) -> dict:
        return {
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "name": self.name,
            "trainable": self.trainable,
        }

    @classmethod
    def from_config(cls, config: dict, custom_objects=None):
        config = dict(config)
        config["encoder"] = keras.saving.deserialize_keras_object(
            config["encoder"], custom_objects=custom_objects
        )
        return cls(**config)
