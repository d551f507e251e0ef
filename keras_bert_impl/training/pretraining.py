"""One pretraining run: strategy, model, optimizer, resumable fit, final export."""

import os
from collections.abc import Callable

import keras
import tensorflow as tf

from keras_bert_impl.config import BertConfig
from keras_bert_impl.models.encoder import BertEncoder
from keras_bert_impl.models.pretrainer import BertPretrainer
from keras_bert_impl.text.tokenizer import BertTokenizer
from keras_bert_impl.training.checkpointing import TrainingCheckpoint, fit_to_step
from keras_bert_impl.training.loss_scaling import ReplicaConsistentLossScaleOptimizer
from keras_bert_impl.training.optimization import create_optimizer
from keras_bert_impl.training.strategy import get_strategy, is_chief, task_id
from keras_bert_impl.training.summaries import StepTensorBoard

DatasetFn = Callable[[tf.distribute.InputContext, int], tf.data.Dataset]


class PretrainingRun:
    """Builds, trains (resuming from model_dir) and saves a BertPretrainer.

    ```python
    run = PretrainingRun("/tmp/pretrain", "vocab.txt", True, BertConfig.from_preset("bert_tiny"))
    run.build(learning_rate=1e-4, num_train_steps=1000, num_warmup_steps=100)
    run.fit(lambda context, start_step: pretraining_dataset(
        files, run.tokenizer, batch_size=32, seed=1, input_context=context,
        start_step=start_step), num_train_steps=1000, save_checkpoints_steps=100)
    run.save_final_model()
    ```
    """

    def __init__(
        self,
        model_dir: str,
        vocab_file: str,
        lower_case: bool,
        config: BertConfig,
        strategy_name: str = "default",
        tpu: str = "",
    ):
        self.model_dir = model_dir
        # TensorBoard's runs: train/ (fit) and validation/ (write_evaluation).
        self.log_dir = os.path.join(model_dir, "logs")
        self.vocab_file = vocab_file
        self.config = config
        self.strategy = get_strategy(strategy_name, tpu=tpu)
        self.is_chief = is_chief(self.strategy)
        self.task_id = task_id(self.strategy)
        self.tokenizer = BertTokenizer(vocab_file, lower_case=lower_case)
        # Set by build(): Google names of pretraining heads init_checkpoint lacked.
        self.heads_not_in_init_checkpoint: list[str] = []
        if self.tokenizer.vocab_size != config.vocab_size:
            raise ValueError(
                f"vocab_size {config.vocab_size} in the BERT config does not match "
                f"{self.tokenizer.vocab_size} tokens in {vocab_file}"
            )

    def build(
        self,
        learning_rate: float,
        num_train_steps: int,
        num_warmup_steps: int,
        optimizer_type: str = "adamw",
        weight_decay_rate: float = 0.01,
        loss_scaling: bool = False,
        jit_compile: bool = False,
        steps_per_execution: int = 1,
        init_checkpoint: str | None = None,
    ) -> BertPretrainer:
        """Creates model and optimizer in the strategy's scope; restores the newest checkpoint."""
        with self.strategy.scope():
            self.encoder = BertEncoder(self.config, name="bert")
            self.pretrainer = BertPretrainer(self.encoder)
            optimizer = create_optimizer(
                learning_rate, num_train_steps=num_train_steps,
                num_warmup_steps=num_warmup_steps, weight_decay_rate=weight_decay_rate,
                optimizer_type=optimizer_type,
            )
            if loss_scaling:
                optimizer = ReplicaConsistentLossScaleOptimizer(optimizer)
            self.pretrainer.compile(
                optimizer=optimizer, jit_compile=jit_compile,
                steps_per_execution=steps_per_execution,
            )
            if init_checkpoint:
                from keras_bert_impl.checkpoints.google import load_google_checkpoint

                # As run_pretraining.py, heads the checkpoint lacks (an encoder's own
                # checkpoint) start from their initial values.
                loaded = load_google_checkpoint(self.pretrainer, init_checkpoint,
                                                allow_missing_heads=True)
                self.heads_not_in_init_checkpoint = loaded.missing
            self.checkpoint = TrainingCheckpoint(
                self.model_dir, self.pretrainer, self.pretrainer.optimizer,
                is_chief=self.is_chief, task_id=self.task_id,
            )
            self.initial_step = self.checkpoint.restore()
        return self.pretrainer

    def fit(
        self,
        dataset_fn: DatasetFn,
        num_train_steps: int,
        save_checkpoints_steps: int,
        verbose: str | int = "auto",
    ) -> keras.callbacks.History | None:
        """Trains until `num_train_steps` optimizer steps are applied, one epoch per
        checkpoint interval (`fit_to_step`).

        `dataset_fn(input_context, start_step)` returns one input pipeline's
        endless, deterministic stream of per-replica batches with the first
        `start_step` batches skipped (`pretraining_dataset` does); the run
        passes how many its pipeline has already trained on.
        """
        # Optimizer steps, not batches: fp16 steps skipped on overflow read batches too.
        if self.checkpoint.step > num_train_steps:
            raise ValueError(
                f"{self.model_dir} holds a run at step {self.checkpoint.step}, past "
                f"num_train_steps={num_train_steps}; give at least {self.checkpoint.step} to "
                "finish it, or another model_dir to train a shorter run")

        def datasets_from(batches: int) -> tf.distribute.DistributedDataset:
            def pipeline(context: tf.distribute.InputContext) -> tf.data.Dataset:
                batches_per_step = context.num_replicas_in_sync // context.num_input_pipelines
                return dataset_fn(context, batches * batches_per_step)

            return self.strategy.distribute_datasets_from_function(pipeline)

        return fit_to_step(
            self.pretrainer, datasets_from, self.checkpoint, num_train_steps,
            steps_per_epoch=min(save_checkpoints_steps, num_train_steps),
            # One set of summaries: the chief's (the workers' curves are the same).
            callbacks=[StepTensorBoard(self.log_dir)] if self.is_chief else [],
            verbose=verbose if self.is_chief else 0,
            shuffle=False,
        )

    def save_final_model(self) -> None:
        """Writes encoder.keras, a Google-format checkpoint, bert_config.json and vocab.txt."""
        from keras_bert_impl.checkpoints.google import save_google_checkpoint

        if not self.is_chief:
            return
        self.encoder.save(os.path.join(self.model_dir, "encoder.keras"))
        save_google_checkpoint(self.pretrainer, os.path.join(self.model_dir, "bert_model.ckpt"))
        self.config.to_json_file(os.path.join(self.model_dir, "bert_config.json"))
        tf.io.gfile.copy(self.vocab_file, os.path.join(self.model_dir, "vocab.txt"), overwrite=True)
