"""TensorFlow Serving's `BatchingParameters` text proto (`--batching_parameters_file`).

tensorflow-serving-api does not ship `session_bundle_config.proto`, so the message
is declared here with the same field names and numbers, and files are parsed
with protobuf's own text-format parser: a file the real server accepts parses
the same way here, and a typo is reported with its line and column.
"""

import dataclasses

from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    message_factory,
    text_format,
    wrappers_pb2,
)

from keras_bert_impl.data.text_files import read_utf8
from keras_bert_impl.serving.model_config import TEXT_PROTO_PARSER

_FIELDS = (
    # name, field number, wrapper message (None: a plain scalar field)
    ("max_batch_size", 1, ".google.protobuf.Int64Value"),
    ("batch_timeout_micros", 2, ".google.protobuf.Int64Value"),
    ("max_enqueued_batches", 3, ".google.protobuf.Int64Value"),
    ("num_batch_threads", 4, ".google.protobuf.Int64Value"),
    ("thread_pool_name", 5, ".google.protobuf.StringValue"),
    ("allowed_batch_sizes", 6, None),
    ("pad_variable_length_inputs", 7, None),
    # Newer fields; files are text, so only the names matter here.
    ("enable_large_batch_splitting", 8, ".google.protobuf.BoolValue"),
    ("max_execution_batch_size", 9, ".google.protobuf.Int64Value"),
)


def _message_class():
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    file_proto = descriptor_pb2.FileDescriptorProto(
        name="keras_bert_impl/batching_parameters.proto",
        package="tensorflow.serving",
        dependency=["google/protobuf/wrappers.proto"],
        syntax="proto3",
    )
    message = file_proto.message_type.add(name="BatchingParameters")
    field_type = descriptor_pb2.FieldDescriptorProto
    for name, number, wrapper in _FIELDS:
        field = message.field.add(name=name, number=number)
        if wrapper:
            field.type, field.type_name = field_type.TYPE_MESSAGE, wrapper
            field.label = field_type.LABEL_OPTIONAL
        elif name == "allowed_batch_sizes":
            field.type, field.label = field_type.TYPE_INT64, field_type.LABEL_REPEATED
        else:
            field.type, field.label = field_type.TYPE_BOOL, field_type.LABEL_OPTIONAL
    pool.Add(file_proto)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters"))


BatchingParametersProto = _message_class()


@dataclasses.dataclass(frozen=True)
class BatchingOptions:
    """Server-side batching settings; the defaults are tensorflow_model_server's.

    Requests whose inputs differ beyond the batch dimension are never merged, so
    `pad_variable_length_inputs` is read from files for compatibility and unused;
    so is `max_execution_batch_size`, which only matters with large batch splitting.
    """

    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 100
    num_batch_threads: int = 4
    allowed_batch_sizes: tuple[int, ...] = ()

    def __post_init__(self):
        # TensorFlow Serving refuses the same values when it creates its batch scheduler.
        for name in ("max_batch_size", "max_enqueued_batches", "num_batch_threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.batch_timeout_micros < 0:
            raise ValueError(
                f"batch_timeout_micros must be non-negative, got {self.batch_timeout_micros}")
        if self.allowed_batch_sizes:
            sizes = list(self.allowed_batch_sizes)
            if sizes[0] < 1:
                raise ValueError(f"allowed_batch_sizes {sizes} must be positive")
            if sizes != sorted(set(sizes)) or sizes[-1] != self.max_batch_size:
                raise ValueError(
                    f"allowed_batch_sizes {sizes} must increase strictly and end with "
                    f"max_batch_size ({self.max_batch_size}), as TensorFlow Serving requires")


def parse_batching_parameters(text: str, source: str = "<string>") -> BatchingOptions:
    """Parses BatchingParameters text format into `BatchingOptions`."""
    proto = BatchingParametersProto()
    try:
        text_format.Parse(text, proto)
    except text_format.ParseError as error:
        raise ValueError(f"{source}: not a valid BatchingParameters text proto: {error}") from None
    if proto.HasField("enable_large_batch_splitting") and proto.enable_large_batch_splitting.value:
        raise ValueError(
            f"{source}: enable_large_batch_splitting is not implemented by this development "
            "server (the real tensorflow_model_server splits batches above "
            "max_execution_batch_size); set it to false or leave it out here")
    defaults = BatchingOptions()
    values = {}
    for name in ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches",
                 "num_batch_threads"):
        given = proto.HasField(name)
        values[name] = getattr(proto, name).value if given else getattr(defaults, name)
    try:
        return BatchingOptions(
            allowed_batch_sizes=tuple(proto.allowed_batch_sizes), **values)
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from None


def read_batching_parameters(path: str) -> BatchingOptions:
    """Reads a `--batching_parameters_file`."""
    text = read_utf8(path, bom_refused_by=TEXT_PROTO_PARSER)
    return parse_batching_parameters(text, source=path)
