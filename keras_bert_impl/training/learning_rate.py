"""The original BERT learning-rate schedule: linear warmup, then polynomial decay."""

import math
import numbers
import warnings

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_bert_impl")
class WarmupPolynomialDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup from 0 to `init_lr`, then polynomial decay to `end_lr`.

    As google-research/bert `optimization.py`: the decay runs over all
    `num_train_steps` (the warmup steps included) and the warmup overrides it
    while `step < num_warmup_steps`.

    ```python
    schedule = WarmupPolynomialDecay(1e-4, num_train_steps=1000, num_warmup_steps=100)
    schedule(50)  # 5e-5: half way through the warmup
    ```
    """

    def __init__(
        self,
        init_lr: float,
        num_train_steps: int,
        num_warmup_steps: int = 0,
        end_lr: float = 0.0,
        power: float = 1.0,
    ):
        num_train_steps = _whole_number(num_train_steps, "num_train_steps")
        num_warmup_steps = _whole_number(num_warmup_steps, "num_warmup_steps")
        if num_train_steps <= 0:
            raise ValueError(f"num_train_steps must be positive, got {num_train_steps}")
        if not 0 <= num_warmup_steps <= num_train_steps:
            raise ValueError(
                f"num_warmup_steps must be in [0, num_train_steps={num_train_steps}], "
                f"got {num_warmup_steps}"
            )
        self.init_lr = init_lr
        self.num_train_steps = num_train_steps
        self.num_warmup_steps = num_warmup_steps
        self.end_lr = end_lr
        self.power = power

    def __call__(self, step):
        step = ops.cast(step, "float32")
        done = ops.minimum(step, float(self.num_train_steps)) / float(self.num_train_steps)
        decayed = (self.init_lr - self.end_lr) * ops.power(1.0 - done, self.power) + self.end_lr
        if self.num_warmup_steps == 0:
            return decayed
        warmup = self.init_lr * step / float(self.num_warmup_steps)
        return ops.where(step < float(self.num_warmup_steps), warmup, decayed)

    @classmethod
    def from_config(cls, config: dict) -> "WarmupPolynomialDecay":
        # Models saved while fractional step counts were taken still load, rounded.
        config = dict(config)
        for name in ("num_train_steps", "num_warmup_steps"):
            value = config.get(name)
            if isinstance(value, float) and math.isfinite(value) and not value.is_integer():
                warnings.warn(f"WarmupPolynomialDecay: {name}={value} rounded to "
                              f"{round(value)} (step counts are whole numbers)", stacklevel=2)
                config[name] = round(value)
        return cls(**config)

    def get_config(self) -> dict:
        return {
            "init_lr": self.init_lr,
            "num_train_steps": self.num_train_steps,
            "num_warmup_steps": self.num_warmup_steps,
            "end_lr": self.end_lr,
            "power": self.power,
        }


def _whole_number(value, name: str) -> int:
    """A step count as an int; one with a fraction, an infinity or NaN is an error (the
    original builds its step counts as int32 constants)."""
    if (isinstance(value, bool) or not isinstance(value, numbers.Real)
            or not math.isfinite(value) or value != int(value)):
        raise ValueError(f"{name} must be a whole number of steps, got {value!r}")
    return int(value)
