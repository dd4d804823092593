"""Protobuf messages to plain Python values, keeping 64-bit integers as ints.

``json_format.MessageToDict`` turns int64 into strings (as proto3 JSON requires); Triton's
HTTP API returns numbers, and we want one shape for both protocols.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message


def to_dict(message: Message) -> dict[str, Any]:
    """``message`` as a dict keyed by proto field names, enums by name.

    Scalars, lists and maps appear even at their default (as Triton's JSON does); a
    singular sub-message appears only when set, because its presence carries meaning
    (``dynamic_batching`` present means dynamic batching is on).
    """
    result: dict[str, Any] = {}
    for descriptor in message.DESCRIPTOR.fields:
        is_message = descriptor.message_type is not None and not descriptor.is_repeated
        if is_message and not message.HasField(descriptor.name):
            continue
        if descriptor.containing_oneof is not None and not is_message and not message.HasField(descriptor.name):
            continue
        result[descriptor.name] = _value(descriptor, getattr(message, descriptor.name))
    return result


def _value(descriptor: FieldDescriptor, value: Any) -> Any:
    message_type = descriptor.message_type
    if message_type is not None and message_type.GetOptions().map_entry:
        value_field = message_type.fields_by_name["value"]
        return {key: _scalar(value_field, item) for key, item in value.items()}
    if descriptor.is_repeated:
        return [_scalar(descriptor, item) for item in value]
    return _scalar(descriptor, value)


def _scalar(descriptor: FieldDescriptor, value: Any) -> Any:
    if descriptor.message_type is not None:
        return to_dict(value)
    if descriptor.enum_type is not None:
        return descriptor.enum_type.values_by_number[value].name
    return value


def parameter_value(parameter: Message) -> Any:
    """The one value set in an ``InferParameter``-like oneof message."""
    which = parameter.WhichOneof("parameter_choice")
    return getattr(parameter, which) if which else None
