"""One exception base for streamsense, one subclass per way an input can be refused.

Every refusal carries a stable ``code`` (for dead-letter records and metrics), the ``field`` at
fault when there is one, and a message a person can act on.
"""

from __future__ import annotations


class StreamsenseError(Exception):
    """Base of every error streamsense raises on purpose."""


class InvalidEvent(StreamsenseError):
    """An input message that cannot be processed.

    >>> exc = MissingField("missing_field", "amount", "required field 'amount' is missing")
    >>> exc.code, exc.field, str(exc)
    ('missing_field', 'amount', "required field 'amount' is missing")
    """

    def __init__(self, code: str, field: str | None, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.field = field
        self.message = message


class TooLarge(InvalidEvent): """The raw message exceeds the size cap."""
class NotUtf8(InvalidEvent): """The raw message is not UTF-8 text."""
class MalformedJson(InvalidEvent): """The text is not JSON (or nests too deeply)."""
class NotAnObject(InvalidEvent): """The JSON value is not an object."""
class MissingField(InvalidEvent): """A required field is absent."""
class UnknownField(InvalidEvent): """A field the contract does not define."""
class WrongType(InvalidEvent): """A field has the wrong JSON type."""
class NotFinite(InvalidEvent): """NaN or an infinite number."""
class OutOfRange(InvalidEvent): """A number or a time outside the accepted range."""
class TooLong(InvalidEvent): """A string or a map longer than allowed, or an empty id."""
class UnknownEnumValue(InvalidEvent): """A value outside the contract's enumeration."""
class BadTimestamp(InvalidEvent): """A timestamp that is neither epoch seconds nor ISO-8601 with a zone."""
class KeyMismatch(InvalidEvent): """The Kafka key is not the field the topic is keyed by."""
