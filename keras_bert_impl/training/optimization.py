"""The BERT optimizer: AdamW (or LAMB) with warmup, decay and gradient clipping."""

import math
import numbers

import keras

from keras_bert_impl.training.adamw import BertAdamW
from keras_bert_impl.training.lamb import BertLamb
from keras_bert_impl.training.learning_rate import WarmupPolynomialDecay
from keras_bert_impl.training.weight_decay_exclusion import NO_WEIGHT_DECAY


def create_optimizer(
    init_lr: float,
    num_train_steps: int,
    num_warmup_steps: int,
    weight_decay_rate: float = 0.01,
    optimizer_type: str = "adamw",
    end_lr: float = 0.0,
    beta_1: float = 0.9,
    beta_2: float = 0.999,
    epsilon: float = 1e-6,
    global_clipnorm: float | None = 1.0,
) -> keras.optimizers.Optimizer:
    """Returns the original BERT recipe as a Keras optimizer.

    The original's schedule (`WarmupPolynomialDecay`): a linear decay from
    `init_lr` at step 0 to `end_lr` at `num_train_steps`, with its first
    `num_warmup_steps` replaced by a linear warmup `init_lr * step /
    num_warmup_steps`, so the rate peaks just under `init_lr`; decoupled
    weight decay on every variable except LayerNorm and bias variables;
    gradients clipped to a global norm of `global_clipnorm` (None: no
    clipping); AdamW with `beta_1`, `beta_2`, `epsilon` and without Adam's
    bias correction, as the original's `AdamWeightDecayOptimizer`
    (`BertAdamW`). `optimizer_type="lamb"` uses LAMB's layer-wise trust ratio
    for large batches (clipped as well).

    Under a distribution strategy each replica's gradient is clipped to the
    global norm, as on the original's TPU shards, and the clipped gradients are
    averaged, so the step does not grow with the number of replicas R. While
    clipping is active the step still depends on R (the mean of R clipped
    gradients is not the clipped mean): a run moved to another replica count,
    or one with another R, follows another path, as the original's did on
    another number of TPU shards. The original's `CrossShardOptimizer` summed
    the clipped gradients instead; without bias
    correction that is the mean with `epsilon` divided by the number of
    replicas R, so `epsilon=1e-6 / R` reproduces an original TPU run exactly.

    ```python
    opt = create_optimizer(1e-4, num_train_steps=10000, num_warmup_steps=1000)
    pretrainer.compile(optimizer=opt)
    ```
    """
    # A negative rate climbs the loss and a NaN one ruins the weights, both without error.
    init_lr = _finite(init_lr, "init_lr (the peak learning rate)", "> 0", lambda v: v > 0)
    weight_decay_rate = _finite(weight_decay_rate, "weight_decay_rate", ">= 0", lambda v: v >= 0)
    end_lr = _finite(end_lr, "end_lr", f"in [0, init_lr={init_lr:g}]", lambda v: 0 <= v <= init_lr)
    beta_1 = _finite(beta_1, "beta_1", "in [0, 1)", lambda v: 0 <= v < 1)
    beta_2 = _finite(beta_2, "beta_2", "in [0, 1)", lambda v: 0 <= v < 1)
    epsilon = _finite(epsilon, "epsilon", "> 0", lambda v: v > 0)
    if global_clipnorm is not None:  # Keras reads 0 as no clipping
        global_clipnorm = _finite(global_clipnorm, "global_clipnorm (None: no clipping)", "> 0",
                                  lambda v: v > 0)
    schedule = WarmupPolynomialDecay(
        init_lr, num_train_steps=num_train_steps, num_warmup_steps=num_warmup_steps, end_lr=end_lr
    )
    kwargs = {
        "learning_rate": schedule,
        "weight_decay": weight_decay_rate,
        "beta_1": beta_1,
        "beta_2": beta_2,
        "epsilon": epsilon,
        "global_clipnorm": global_clipnorm,
    }
    if optimizer_type == "adamw":
        optimizer = BertAdamW(**kwargs)
    elif optimizer_type == "lamb":
        optimizer = BertLamb(**kwargs)
    else:
        raise ValueError(f"optimizer_type must be 'adamw' or 'lamb', got {optimizer_type!r}")
    optimizer.exclude_from_weight_decay(var_names=list(NO_WEIGHT_DECAY))
    return optimizer


def _finite(value, name: str, expected: str, valid) -> float:
    """`value` as a float (numpy scalars too), or a ValueError saying what `name` must be."""
    if (isinstance(value, bool) or not isinstance(value, numbers.Real)
            or not math.isfinite(value) or not valid(value)):
        raise ValueError(f"{name} must be a finite number {expected}, got {value!r}")
    return float(value)
