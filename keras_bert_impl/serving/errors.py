"""The one error type of the serving package: a gRPC status code plus a message."""

import grpc


class ServingError(Exception):
    """A request failed with a TensorFlow-Serving status `code` and a readable message.

    The server raises it to answer a request with that code; the client raises it
    when the server answered with an error, carrying the server's message.
    """

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


def invalid_argument(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


def not_found(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.NOT_FOUND, message)
