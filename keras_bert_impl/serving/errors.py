"""The one error type of the serving package: a gRPC status code plus a message."""

import grpc

MAX_MESSAGE_CHARS = 3000  # at most 12 kB of UTF-8, under gRPC's 16 KiB of metadata


class ServingError(Exception):
    """A request failed with a TensorFlow-Serving status `code` and a readable message.

    The server raises it to answer a request with that code; the client raises it
    when the server answered with an error, carrying the server's message.
    """

    def __init__(self, code: grpc.StatusCode, message: str):
        # Messages quote what the request sent; a megabyte of it would not fit gRPC's
        # 16 KiB limit on a status message (the client would see RESOURCE_EXHAUSTED).
        if len(message) > MAX_MESSAGE_CHARS:
            message = (f"{message[:MAX_MESSAGE_CHARS]}... ({len(message) - MAX_MESSAGE_CHARS:,} "
                       "more characters)")
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


def invalid_argument(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


def not_found(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.NOT_FOUND, message)
