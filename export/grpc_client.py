"""Sends texts to a served BERT export over TensorFlow Serving's gRPC API.

Needs only `grpcio`, `tensorflow` and `tensorflow-serving-api`:

    python export/grpc_client.py --target=localhost:8500 "Paris is the [MASK] of France."
    python export/grpc_client.py --model_name=qa --pair="a second sentence" "a first sentence"
"""

import argparse

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc


def predict(target: str, model_name: str, texts: list[str], pairs: list[str] | None = None,
            signature_name: str = "serving_default", timeout: float = 10.0) -> dict:
    """One PredictRequest with `text` (and `text_pair`); returns numpy outputs by name."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    request.inputs["text"].CopyFrom(tf.make_tensor_proto(texts, dtype=tf.string))
    if pairs is not None:
        request.inputs["text_pair"].CopyFrom(tf.make_tensor_proto(pairs, dtype=tf.string))
    with grpc.insecure_channel(target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        response = stub.Predict(request, timeout=timeout)
    return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("texts", nargs="+")
    parser.add_argument("--pair", action="append", help="text_pair, once per text (pair models)")
    parser.add_argument("--target", default="localhost:8500")
    parser.add_argument("--model_name", default="bert")
    args = parser.parse_args()
    try:
        outputs = predict(args.target, args.model_name, args.texts, args.pair)
    except grpc.RpcError as error:
        raise SystemExit(f"{error.code().name}: {error.details()}") from None
    for name, value in sorted(outputs.items()):
        if value.dtype == object:  # labels, tokens, answers: UTF-8 bytes
            value = np.vectorize(lambda b: b.decode("utf-8", "replace"), otypes=[object])(value)
        print(f"{name}: {value.tolist()}")


if __name__ == "__main__":
    main()
