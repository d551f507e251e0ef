"""Keras models: the encoder, the pretrainer and the fine-tuning models."""
