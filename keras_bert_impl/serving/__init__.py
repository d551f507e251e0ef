"""Serving: a TensorFlow-Serving-compatible model server and a gRPC client."""

from keras_bert_impl.serving.client import Client
from keras_bert_impl.serving.errors import ServingError
from keras_bert_impl.serving.server import ServerHandle, start_server

__all__ = ["Client", "ServerHandle", "ServingError", "start_server"]
