"""The BERT optimizer: AdamW (or LAMB) with warmup, decay and gradient clipping."""

import math

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

    Linear warmup to `init_lr` over `num_warmup_steps`, then linear decay to
    `end_lr` at `num_train_steps`; decoupled weight decay on every variable
    except LayerNorm and bias variables; gradients clipped to a global norm
    of 1.0; AdamW without Adam's bias correction, as the original's
    `AdamWeightDecayOptimizer` (`BertAdamW`). `optimizer_type="lamb"` uses
    LAMB's layer-wise trust ratio for large batches. Under a distribution
    strategy each replica's gradient is clipped to the global norm and the
    clipped gradients are averaged, as the original's `CrossShardOptimizer` did.

    ```python
    opt = create_optimizer(1e-4, num_train_steps=10000, num_warmup_steps=1000)
    pretrainer.compile(optimizer=opt)
    ```
    """
    # A negative rate climbs the loss and a NaN one ruins the weights, both without error.
    if not (isinstance(init_lr, (int, float)) and math.isfinite(init_lr) and init_lr > 0):
        raise ValueError(f"init_lr (the peak learning rate) must be a finite number > 0, "
                         f"got {init_lr!r}")
    for name, value in (("weight_decay_rate", weight_decay_rate), ("end_lr", end_lr)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
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
