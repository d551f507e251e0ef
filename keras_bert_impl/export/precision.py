"""Serving a model in another precision than it was trained in (e.g. bfloat16 on CPUs with
AVX512_BF16 or AMX, and on TPUs), without retraining or touching the original."""

import keras

# Policies that keep float32 variables, so the copy holds exactly the trained weights.
SERVING_POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")
_ENCODER = "keras_bert_impl>BertEncoder"


def with_dtype_policy(model: keras.Model, dtype_policy: str) -> keras.Model:
    """A copy of `model` whose encoders compute under `dtype_policy`, with its weights.

    The copy is rebuilt from the model's config, its `BertEncoder`s' `dtype` set to the
    policy and the global policy set to it meanwhile, so that layers without their own
    dtype follow, as if the model had been built under `keras.config.set_dtype_policy`.
    Layers pinned to float32 (the logits heads) stay float32, so outputs keep their
    dtypes. The model itself is left as it is.

    ```python
    served = with_dtype_policy(classifier, "mixed_bfloat16")  # bf16 matmuls, float32 logits
    ```
    """
    if dtype_policy not in SERVING_POLICIES:
        raise ValueError(f"dtype_policy must be one of {list(SERVING_POLICIES)} (float32 "
                         f"variables, so the trained weights carry over), got {dtype_policy!r}")
    policy = keras.dtype_policies.get(dtype_policy)
    config = keras.saving.serialize_keras_object(model)
    if not _set_encoder_policies(config, keras.saving.serialize_keras_object(policy)):
        raise ValueError(f"a {type(model).__name__} has no BertEncoder to set a dtype_policy "
                         "on; export it in its own precision (dtype_policy=None)")
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        copy = keras.saving.deserialize_keras_object(config)
    finally:
        keras.config.set_dtype_policy(previous)
    _copy_weights(model, copy)
    return copy


def _set_encoder_policies(config, policy: dict) -> int:
    """Sets `dtype` of every serialized BertEncoder in `config`; how many there were."""
    count = 0
    if isinstance(config, dict):
        if config.get("registered_name") == _ENCODER:
            config["config"]["dtype"] = policy
            count += 1
        children = config.values()
    elif isinstance(config, list):
        children = config
    else:
        return 0
    return count + sum(_set_encoder_policies(child, policy) for child in children)


def _copy_weights(source: keras.Model, target: keras.Model) -> None:
    if len(source.weights) != len(target.weights):
        raise ValueError(f"rebuilding {source.name} gave {len(target.weights)} weights where "
                         f"it has {len(source.weights)}")
    pairs = list(zip(source.weights, target.weights))
    for old, new in pairs:
        if old.path != new.path or old.shape != new.shape:
            raise ValueError(f"rebuilding {source.name} gave weight {new.path} {new.shape} "
                             f"where it has {old.path} {old.shape}")
    for old, new in pairs:
        new.assign(old)
