"""The one error type of the serving package: a gRPC status code plus a message."""

import grpc

# gRPC sends a status message percent-encoded (3 bytes for each byte outside printable
# ASCII) and may refuse metadata over 8 KiB; a cut message stays well under it.
MAX_MESSAGE_BYTES = 6000


class ServingError(Exception):
    """A request failed with a TensorFlow-Serving status `code` and a readable message.

    The server raises it to answer a request with that code; the client raises it
    when the server answered with an error, carrying the server's message.
    """

    def __init__(self, code: grpc.StatusCode, message: str):
        # Messages quote what the request sent; a megabyte of it would not fit gRPC's
        # limit on a status message (the client would see RESOURCE_EXHAUSTED instead).
        message = _cut_to_wire_size(message, MAX_MESSAGE_BYTES)
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


def _wire_size(char: str) -> int:
    """Bytes of `char` in a percent-encoded gRPC status message."""
    return 1 if " " <= char <= "~" and char != "%" else 3 * len(char.encode("utf-8", "replace"))


def _cut_to_wire_size(message: str, limit: int) -> str:
    if len(message) * 12 <= limit:  # no character takes more than 12 bytes
        return message
    size = 0
    for end, char in enumerate(message):
        size += _wire_size(char)
        if size > limit:
            return f"{message[:end]}... ({len(message) - end:,} more characters)"
    return message


def invalid_argument(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


def not_found(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.NOT_FOUND, message)
