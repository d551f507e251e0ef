"""Weight-decay exclusions by variable name that survive the optimizer's serialization."""

# The original excludes "LayerNorm", "layer_norm" and "bias" by variable name.
# Keras names a LayerNormalization's variables "gamma" and "beta", and matches
# the patterns against each variable's own name, so those two are listed too.
NO_WEIGHT_DECAY = ("LayerNorm", "layer_norm", "bias", "gamma", "beta")


class SerializedWeightDecayExclusion:
    """Optimizer mixin: `exclude_from_weight_decay` adds to the exclusions and its
    `var_names` are kept in `get_config`.

    Keras' own method replaces the exclusions, so excluding one more variable
    from an optimizer of `create_optimizer` would decay LayerNorm and bias
    weights again, without a word.

    Keras leaves the exclusion out of the config, so a model saved with
    `model.save` and loaded again would decay its LayerNorm and bias weights.
    Exclusions by variable (`var_list`) name no variable in a config and stay
    out of it. A config without the entry (saved before it existed) gets
    `create_optimizer`'s exclusion.
    """

    def __init__(self, *args, exclude_from_weight_decay_names=(), **kwargs):
        super().__init__(*args, **kwargs)
        self._excluded_names = ()
        if exclude_from_weight_decay_names:
            self.exclude_from_weight_decay(var_names=list(exclude_from_weight_decay_names))

    def exclude_from_weight_decay(self, var_list=None, var_names=None):
        names = tuple(dict.fromkeys((*self._excluded_names, *(var_names or ()))))
        variables = set(getattr(self, "_exclude_from_weight_decay", ()))
        super().exclude_from_weight_decay(var_list=var_list, var_names=list(names) or None)
        self._exclude_from_weight_decay |= variables
        self._excluded_names = names

    def get_config(self) -> dict:
        return {**super().get_config(),
                "exclude_from_weight_decay_names": list(self._excluded_names)}

    @classmethod
    def from_config(cls, config: dict, custom_objects=None):
        # Configs saved before the exclusion was recorded came from create_optimizer.
        config = {"exclude_from_weight_decay_names": list(NO_WEIGHT_DECAY), **config}
        return super().from_config(config, custom_objects=custom_objects)
