"""TensorFlow Serving's REST API:
`/v1/models/<name>[/versions/<v>|/labels/<l>][:predict|/metadata]`.

Request and response JSON follow TF Serving (`rest_json`). Bodies come with
Content-Length or chunked Transfer-Encoding, up to `MAX_BODY_BYTES` (413 above it);
a body whose end cannot be found gets 400 and the connection is closed, so its bytes
are never read as a next request. A connection that sends nothing for the read
timeout (`--rest_api_timeout_in_ms`) is closed, with 408 if a request was under way,
and one whose request has not arrived whole within twice that time after its first
byte, and arrives slower than `MIN_UPLOAD_RATE`, is hung up on, so stalled or
trickling clients hold no thread for long. At most `MAX_CONNECTIONS` connections are
open at once (each has a thread); more are answered 503 and closed.
"""

import contextlib
import errno
import http.server
import json
import re
import socket
import sys
import threading
import time
import urllib.parse

import grpc
from absl import logging
from google.protobuf import json_format

from keras_bert_impl.serving.errors import ServingError, invalid_argument, not_found
from keras_bert_impl.serving.model_manager import ModelManager
from keras_bert_impl.serving.rest_json import parse_predict_body, predict_response
from keras_bert_impl.serving.servable import DEFAULT_SIGNATURE

# As TF Serving routes: case-insensitive, with the name and label percent-decoded.
_PATH = re.compile(r"^/v1/models/(?P<name>[^/:]+)"
                   r"(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?"
                   r"(?P<method>:predict|/metadata)?$", re.IGNORECASE)
_NO_MODEL_NAME = re.compile(r"^/v1/models/?$", re.IGNORECASE)
_API_PREFIX = re.compile(r"^/v1/", re.IGNORECASE)
_MAX_VERSION = (1 << 63) - 1
# Python's JSON parser needs several times the body in memory; bigger batches go by gRPC.
MAX_BODY_BYTES = 256 << 20
DEFAULT_READ_TIMEOUT = 30.0  # seconds; TF Serving's --rest_api_timeout_in_ms default
# Each connection holds a thread and a file handle: past this many, new ones get 503, so
# that idle or trickling clients cannot take every handle (gRPC's included) from the process.
MAX_CONNECTIONS = 512
# A request still arriving twice the read timeout after its first byte is hung up on when
# its bytes come slower than this (a body at this rate is never cut off).
MIN_UPLOAD_RATE = 64 << 10  # bytes per second
# A refused connection's request is read (and dropped) before the socket closes: closing
# over unread bytes resets the connection, and the client would see that, not the 503.
_REFUSED_LINGER = 2.0  # seconds
_MAX_REFUSED_LINGERING = 64
_READ_PIECE = 1 << 20  # a body is read in pieces, so a claimed size reserves no memory
_MAX_LINE = 1 << 16
_ASCII_DIGITS = re.compile(r"[0-9]+")
_CHUNK_SIZE_LINE = re.compile(rb"([0-9A-Fa-f]+)[ \t]*(?:;[^\r\n]*)?\r?\n")
_HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


class _HttpError(Exception):
    """A request refused for its HTTP framing (body length, encoding): status and message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class _Handler(http.server.BaseHTTPRequestHandler):
    manager: ModelManager  # set by make_rest_server
    received = 0  # bytes of the body of the request arriving
    server: "_RestServer"
    protocol_version = "HTTP/1.1"
    # TCP_NODELAY: headers and body are two writes, which Nagle's algorithm and the
    # client's delayed ACK held ~40 ms on every keep-alive request.
    disable_nagle_algorithm = True

    def log_message(self, format, *args):
        pass

    def setup(self):
        super().setup()
        self.server.opened(self)

    def finish(self):
        try:
            super().finish()
        finally:
            self.server.closed(self)

    def handle_one_request(self):
        # Between requests a keep-alive connection is idle; a draining server ends it here.
        if not self.server.awaiting_request(self):
            self.close_connection = True
            return
        try:
            first_byte = self.rfile.peek(1)  # idle up to the read timeout
        except TimeoutError:
            first_byte = b""
        if not first_byte:
            self.close_connection = True
            return
        # From its first byte the request must arrive within twice the read timeout, or
        # at least at MIN_UPLOAD_RATE.
        self.received = 0
        self.server.request_arriving(self)
        super().handle_one_request()

    def parse_request(self):
        self.server.request_started(self)
        return super().parse_request()

    def do_GET(self):
        self._answer(self._get)

    def do_POST(self):
        self._answer(self._post)

    def _malformed(self, match=None, request_body=b""):
        raise invalid_argument(f"Malformed request: {self.command} {self.path}")

    def do_PUT(self):
        self._answer(self._malformed)

    do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = do_PUT

    def send_error(self, code, message=None, explain=None):
        """http.server's own refusals (a bad request line, an unknown method, oversized
        headers) as JSON too, and as TF Serving answers an unknown method: 400."""
        if code == 501 and self.command:
            code, message = 400, f"Malformed request: {self.command} {self.path}"
        if self.request_version == "HTTP/0.9":  # an unparsable request line: answer anyway
            self.request_version = "HTTP/1.1"
        self.close_connection = True
        self._send_json(code, {"error": message or self.responses.get(code, ("error",))[0]})

    def _answer(self, handler):
        """Reads the whole request first, so a keep-alive connection stays in step, then
        answers with JSON whatever happens: the server survives every request."""
        try:
            try:
                request_body = self._read_body()
            except TimeoutError:
                raise _HttpError(408, f"the request body stalled: nothing arrived for "
                                      f"{self.timeout:g} s (the REST API's read timeout)") from None
            finally:
                self.server.request_arrived(self)
            match = _PATH.match(self.path)
            if match is None:
                if _NO_MODEL_NAME.match(self.path):
                    raise invalid_argument("Missing model name in request.")
                if _API_PREFIX.match(self.path):
                    raise invalid_argument(
                        f"Malformed request: {self.command} {self.path}; expected "
                        "/v1/models/<name>[/versions/<v>|/labels/<l>][:predict|/metadata]")
                raise not_found(f"no REST endpoint {self.path!r}; expected "
                                "/v1/models/<name>[/versions/<v>|/labels/<l>][:predict|/metadata]")
            status, body = 200, handler(match, request_body)
        except _HttpError as error:
            # The body was not read to its end: the rest must not pass for a next request.
            self.close_connection = True
            status, body = error.status, {"error": error.message}
        except ServingError as error:
            status, body = _HTTP_STATUS.get(error.code, 500), {"error": error.message}
        except Exception as error:  # noqa: BLE001 - an answer instead of a dropped connection
            logging.exception("REST %s %s failed", self.command, self.path)
            status, body = 500, {"error": f"internal error: {type(error).__name__}: {error}"}
        if self.server.draining:
            self.close_connection = True
        self._send_json(status, body)

    def _send_json(self, status: int, body: dict) -> None:
        payload = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _read_body(self) -> bytes:
        """The body framed by Content-Length or chunked Transfer-Encoding; _HttpError if
        its framing is bad or it is over the size limit."""
        lengths = [v.strip() for v in self.headers.get_all("Content-Length") or []]
        encodings = self.headers.get_all("Transfer-Encoding")
        if encodings:
            codings = [c.strip().lower() for v in encodings for c in v.split(",") if c.strip()]
            if codings != ["chunked"]:
                raise _HttpError(501, f"Transfer-Encoding {', '.join(encodings)!r} is not "
                                      "supported; send the body chunked or with Content-Length")
            if lengths:
                # RFC 9112 6.1: both together is how requests are smuggled.
                raise _HttpError(400, "a request must not have both Transfer-Encoding and "
                                      "Content-Length")
            return self._read_chunked()
        if len(set(lengths)) > 1:
            raise _HttpError(400, f"conflicting Content-Length headers {lengths}")
        header = lengths[0] if lengths else "0"
        if not _ASCII_DIGITS.fullmatch(header):
            raise _HttpError(400, f"bad Content-Length header {header!r}: expected the body's "
                                  "size in bytes, in ASCII digits")
        limit = self.server.max_body_bytes
        digits = header.lstrip("0")
        if len(digits) > len(str(limit)) or int(digits or "0") > limit:
            raise _HttpError(413, f"the request body of {header} bytes is over the REST API's "
                                  f"limit of {limit} bytes; send smaller batches, or use gRPC")
        return self._read_exactly(int(digits or "0"), "body")

    def _read_chunked(self) -> bytes:
        pieces, total, limit = [], 0, self.server.max_body_bytes
        while True:
            line = self.rfile.readline(_MAX_LINE)
            match = _CHUNK_SIZE_LINE.fullmatch(line)
            if match is None:
                raise _HttpError(400, f"bad chunk-size line {line[:40]!r} in a chunked body")
            size = int(match[1], 16)
            if size == 0:
                break
            total += size
            if total > limit:
                raise _HttpError(413, f"the chunked request body is over the REST API's limit "
                                      f"of {limit} bytes; send smaller batches, or use gRPC")
            pieces.append(self._read_exactly(size, "chunk"))
            if self.rfile.readline(3) not in (b"\r\n", b"\n"):
                raise _HttpError(400, f"a {size}-byte chunk is not followed by CRLF")
        while (line := self.rfile.readline(_MAX_LINE)) not in (b"\r\n", b"\n", b""):
            if not line.endswith(b"\n"):
                raise _HttpError(400, "a trailer line of the chunked body is too long")
        return b"".join(pieces)

    def _read_exactly(self, size: int, what: str) -> bytes:
        pieces, left = [], size
        while left:
            piece = self.rfile.read1(min(left, _READ_PIECE))  # what has come: counted as it comes
            self.received += len(piece)
            if not piece:
                raise _HttpError(400, f"the request ended {size - left} bytes into a "
                                      f"{size}-byte {what}")
            pieces.append(piece)
            left -= len(piece)
        return b"".join(pieces)

    def _servable(self, match):
        return self.manager.servable(*_model_spec(match))

    def _get(self, match, request_body: bytes):
        if _method(match) == ":predict":
            self._malformed()
        if _method(match) == "/metadata":
            servable = self._servable(match)
            signature_map = servable.signature_def_map()
            return {"model_spec": {"name": servable.name, "signature_name": "",
                                   "version": str(servable.version)},
                    # TF Serving prints fields at their defaults too (`"unknown_rank": false`).
                    "metadata": {"signature_def": json_format.MessageToDict(
                        signature_map, preserving_proto_field_name=True,
                        always_print_fields_with_no_presence=True)}}
        name = _model_name(match)
        states = self.manager.version_states(name)
        if match["version"]:  # a label is ignored, as TF Serving's GetModelStatus does
            version = _version(match)
            if version not in states:
                raise not_found(f"Could not find version {version} of model {name}")
            states = {version: states[version]}
        return {"model_version_status": [
            {"version": str(version), "state": state.state,
             "status": {"error_code": "UNKNOWN" if state.error else "OK",
                        "error_message": state.error}}
            for version, state in sorted(states.items())]}

    def _post(self, match, request_body: bytes):
        if _method(match) != ":predict":
            self._malformed()
        try:
            body = json.loads(request_body)
        except (ValueError, UnicodeDecodeError) as error:
            raise invalid_argument(f"the request body is not JSON: {error}") from None
        except RecursionError:
            raise invalid_argument("the request body's JSON is nested too deeply") from None
        if not isinstance(body, dict):
            raise invalid_argument("the request body must be a JSON object")
        if not isinstance(body.get("signature_name", ""), str):
            raise invalid_argument("'signature_name' key must be a string value.")
        with self.manager.serving(*_model_spec(match)) as servable:
            signature_name = body.get("signature_name") or DEFAULT_SIGNATURE
            signature = servable.signature_defs.get(signature_name)
            if signature is None or signature_name.startswith("__"):
                # TF Serving's REST handler (GetInfoMap); gRPC answers FAILED_PRECONDITION.
                served = sorted(k for k in servable.signature_defs if not k.startswith("__"))
                raise invalid_argument(f'Serving signature name: "{signature_name}" not found '
                                       f"in signature def (signatures: {served})")
            try:
                inputs = parse_predict_body(body, signature)
            except RecursionError:
                raise invalid_argument("an input of the request is nested too deeply") from None
            # TF Serving bounds a REST request's run by --rest_api_timeout_in_ms.
            outputs = servable.predict(signature_name, inputs,
                                       deadline=time.monotonic() + self.timeout)
        return predict_response(outputs, row_format="instances" in body)


def _method(match) -> str:
    return (match["method"] or "").lower()


def _model_spec(match) -> tuple[str, int | None, str]:
    """(model name, version, label) of a /v1/models/... path, as ModelManager takes them."""
    return _model_name(match), _version(match), _label(match)


def _model_name(match) -> str:
    return urllib.parse.unquote(match["name"])


def _label(match) -> str:
    return urllib.parse.unquote(match["label"] or "")


def _version(match) -> int | None:
    if not match["version"]:
        return None
    text = match["version"]
    # Python refuses int() of over 4,300 digits; any number that long is too large anyway.
    digits = text.lstrip("0") or "0"
    if len(digits) > len(str(_MAX_VERSION)) or int(digits) > _MAX_VERSION:
        raise invalid_argument(f"Failed to convert version: {text} to numeric.")
    return int(digits)


class _RestServer(http.server.ThreadingHTTPServer):
    """A threaded HTTP server that can drain: `drain(grace)` stops accepting, ends idle
    keep-alive connections and lets requests being answered finish."""

    # A connection still open after drain() must not keep the process alive.
    daemon_threads = True
    # socketserver's default of 5 dropped connections from bursts of clients (each
    # retried after a 1, 3, 7 s SYN back-off); the kernel caps it at net.core.somaxconn.
    request_queue_size = socket.SOMAXCONN

    def __init__(self, address, handler, max_body_bytes: int, max_connections: int):
        # Set first: a failed bind calls server_close() from socketserver's __init__.
        self._stopped = threading.Event()
        self._changed = threading.Condition()
        self._refused: list[tuple[socket.socket, float]] = []  # answered 503, until when read
        super().__init__(address, handler)
        self.max_body_bytes = max_body_bytes
        self.max_connections = max_connections
        self.draining = False
        self._open: set[_Handler] = set()
        self._busy: set[_Handler] = set()
        self._connections = 0  # admitted by process_request, their threads not yet ended
        self._arriving: dict[_Handler, float] = {}  # when each request's first byte came
        self._watchdog = threading.Thread(target=self._watch, daemon=True,
                                          name="rest-api-watchdog")
        self._watchdog.start()

    def server_close(self):
        self._stopped.set()
        super().server_close()
        with self._changed:
            refused, self._refused = self._refused, []
        for request, _ in refused:
            self.shutdown_request(request)

    def get_request(self):
        try:
            return super().get_request()
        except OSError as error:
            if error.errno in (errno.EMFILE, errno.ENFILE):
                # Out of file handles: the listener stays readable, and socketserver would
                # retry at once, in a loop taking a core until handles come free.
                time.sleep(0.1)
            raise

    def process_request(self, request, client_address):
        with self._changed:
            admitted = self._connections < self.max_connections
            self._connections += admitted
        if not admitted:
            _answer_503(request, self.max_connections)
            with self._changed:
                if len(self._refused) < _MAX_REFUSED_LINGERING:
                    self._refused.append((request, time.monotonic() + _REFUSED_LINGER))
                    return
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._connection_ended()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._connection_ended()

    def _connection_ended(self) -> None:
        with self._changed:
            self._connections -= 1

    def request_arriving(self, handler: _Handler) -> None:
        with self._changed:
            self._arriving[handler] = time.monotonic()

    def request_arrived(self, handler: _Handler) -> None:
        with self._changed:
            self._arriving.pop(handler, None)

    def _watch(self) -> None:
        """Until the server closes: hangs up on requests still arriving twice the read
        timeout after their first byte and slower than MIN_UPLOAD_RATE (a client sending
        a byte now and then would otherwise hold its thread for ever; a body that stops
        for the read timeout gets its 408 before that), and closes refused connections
        once their request is read."""
        limit = 2 * self.RequestHandlerClass.timeout
        while not self._stopped.wait(max(0.05, min(0.5, limit / 8))):
            now = time.monotonic()
            with self._changed:
                for handler, since in list(self._arriving.items()):
                    if now - since > limit and handler.received < MIN_UPLOAD_RATE * (now - since):
                        del self._arriving[handler]
                        _hang_up(handler)
                refused, self._refused = self._refused, []
            lingering = []
            for request, until in refused:
                if now < until and not _read_to_end(request):
                    lingering.append((request, until))
                else:
                    self.shutdown_request(request)
            with self._changed:
                if not self._stopped.is_set():
                    self._refused.extend(lingering)
                    continue
            for request, _ in lingering:  # server_close() ran meanwhile
                self.shutdown_request(request)

    def opened(self, handler: _Handler) -> None:
        with self._changed:
            self._open.add(handler)

    def closed(self, handler: _Handler) -> None:
        with self._changed:
            self._open.discard(handler)
            self._busy.discard(handler)
            self._arriving.pop(handler, None)
            self._changed.notify_all()

    def awaiting_request(self, handler: _Handler) -> bool:
        """Marks the connection idle; False once draining (the connection should end)."""
        with self._changed:
            self._busy.discard(handler)
            self._changed.notify_all()
            return not self.draining

    def request_started(self, handler: _Handler) -> None:
        with self._changed:
            self._busy.add(handler)

    def drain(self, grace: float) -> None:
        """Stops accepting; waits up to `grace` seconds for requests being answered, then
        closes every connection still open."""
        self.shutdown()
        self.server_close()
        with self._changed:
            self.draining = True
            for handler in self._open - self._busy:
                _hang_up(handler)
            self._changed.wait_for(lambda: not self._busy, grace)
            for handler in self._open:
                _hang_up(handler)

    def handle_error(self, request, client_address):
        error = sys.exc_info()[1]
        if isinstance(error, OSError):  # the client went away, or drain() hung up
            logging.info("REST connection from %s ended: %s", client_address[0], error)
        else:
            logging.exception("REST connection from %s failed", client_address[0])


def _read_to_end(request: socket.socket) -> bool:
    """Reads what has arrived without waiting; True once the client has closed (or the
    connection failed)."""
    try:
        while request.recv(_READ_PIECE):
            pass
        return True
    except BlockingIOError:
        return False
    except OSError:
        return True


def _answer_503(request: socket.socket, limit: int) -> None:
    """A 503 to a connection over the limit, written without waiting on the client, and
    the end of what the server sends."""
    body = json.dumps({"error": f"the REST API has its limit of {limit} connections open; "
                                "retry later, reuse a connection, or use gRPC"}).encode()
    head = (f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    try:
        request.setblocking(False)
        request.send(head + body)
        request.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def _hang_up(handler: _Handler) -> None:
    """Ends the connection; a handler blocked reading it sees the end of the stream."""
    with contextlib.suppress(OSError):  # already closed by the client
        handler.connection.shutdown(socket.SHUT_RDWR)


def make_rest_server(manager: ModelManager, host: str, port: int,
                     max_body_bytes: int = MAX_BODY_BYTES,
                     read_timeout: float = DEFAULT_READ_TIMEOUT,
                     max_connections: int = MAX_CONNECTIONS) -> _RestServer:
    """A threaded HTTP server for the REST API; call `serve_forever()` in a thread and
    `drain(grace)` to stop it. A connection silent for `read_timeout` seconds is closed,
    one whose request takes twice that to arrive, slower than MIN_UPLOAD_RATE, is hung
    up on, and connections past `max_connections` get 503."""
    if not read_timeout > 0:
        raise ValueError(f"the REST read timeout must be > 0 seconds, not {read_timeout}")
    if max_connections < 1:
        raise ValueError(f"the REST API needs max_connections >= 1, not {max_connections}")
    # socketserver's StreamRequestHandler applies `timeout` to every read of the socket.
    handler = type("RestHandler", (_Handler,), {"manager": manager, "timeout": read_timeout})
    return _RestServer((host, port), handler, max_body_bytes, max_connections)


def serve_in_thread(server: http.server.HTTPServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, name="rest-api", daemon=True)
    thread.start()
    return thread
