"""Keras layers of the BERT encoder and its heads."""
