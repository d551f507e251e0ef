"""bert-pretrain --init_checkpoint starts from a Google checkpoint, here under fp16 loss scaling."""

import json
import subprocess
import sys

import keras
import numpy as np
import tensorflow as tf

from keras_bert_impl import BertConfig, BertEncoder, save_google_checkpoint
from keras_bert_impl.models.pretrainer import BertPretrainer

TINY = {"vocab_size": 30522, "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
        "intermediate_size": 64, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 64, "type_vocab_size": 2,
        "initializer_range": 0.02}


def _checkpoint_tensors(prefix):
    reader = tf.train.load_checkpoint(prefix)
    return {name: reader.get_tensor(name) for name, _ in tf.train.list_variables(prefix)}


def test_fp16_run_from_a_google_checkpoint_continues_from_its_weights(
        tmp_path, shared_data, uncased_vocab):
    config_file = tmp_path / "bert_config.json"
    config_file.write_text(json.dumps(TINY))
    keras.utils.set_random_seed(0)
    start = save_google_checkpoint(
        BertPretrainer(BertEncoder(BertConfig.from_dict(TINY))),
        tmp_path / "start" / "bert_model.ckpt")
    model_dir = tmp_path / "run"

    result = subprocess.run(
        [sys.executable, "-m", "keras_bert_impl.cli.pretrain",
         f"--vocab_file={uncased_vocab}", f"--bert_config={config_file}",
         f"--input_files={shared_data / 'sample_text.txt'}", f"--model_dir={model_dir}",
         f"--init_checkpoint={start}", "--mixed_precision=fp16", "--learning_rate=1e-5",
         "--train_batch_size=8", "--seq_length=32", "--max_predictions_per_seq=5",
         "--num_train_steps=4", "--num_warmup_steps=1", "--save_checkpoints_steps=4"],
        capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]

    initial = _checkpoint_tensors(start)
    final = _checkpoint_tensors(str(model_dir / "bert_model.ckpt"))
    assert initial.keys() == final.keys()
    for name, value in initial.items():
        assert np.all(np.isfinite(final[name])), name
        # Four Adam steps at 1e-5 move a weight by at most ~4e-5; a fresh
        # initialisation would differ by ~0.02.
        np.testing.assert_allclose(final[name], value, atol=1e-3, err_msg=name)
    moved = [name for name in initial if not np.array_equal(initial[name], final[name])]
    assert "bert/encoder/layer_0/attention/self/query/kernel" in moved


def test_an_encoder_checkpoint_starts_pretraining_with_fresh_heads_as_run_pretraining_does(
        tmp_path, uncased_vocab):
    from keras_bert_impl.training.pretraining import PretrainingRun

    encoder = BertEncoder(BertConfig.from_dict(TINY))
    start = save_google_checkpoint(encoder, tmp_path / "encoder" / "bert_model.ckpt")
    run = PretrainingRun(str(tmp_path / "run"), uncased_vocab, lower_case=True,
                         config=BertConfig.from_dict(TINY))
    run.build(learning_rate=1e-4, num_train_steps=2, num_warmup_steps=0, init_checkpoint=start)

    assert "cls/predictions/output_bias" in run.heads_not_in_init_checkpoint
    assert "cls/seq_relationship/output_weights" in run.heads_not_in_init_checkpoint
    assert not any(name.startswith("bert/") for name in run.heads_not_in_init_checkpoint)
    np.testing.assert_array_equal(
        run.encoder.google_variable_map()["bert/encoder/layer_0/output/dense/kernel"].numpy(),
        _checkpoint_tensors(start)["bert/encoder/layer_0/output/dense/kernel"])
