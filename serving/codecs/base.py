"""The codec interface and the registry that picks a codec by media type.

A :class:`Codec` turns a request body of one content type into a Python value
(:meth:`~Codec.decode`) and a prediction into a response body (:meth:`~Codec.encode`).
A :class:`CodecRegistry` holds one codec per content type and answers the two questions the
server asks: "how do I read this Content-Type?" (415 if nobody can) and "what do I answer for
this Accept header?" (406 if nobody can).
"""

from __future__ import annotations

import codecs as _stdlib_codecs
from collections.abc import Iterable
from typing import Any, ClassVar

from ..errors import BadRequest, ModelError, NotAcceptable, UnsupportedMediaType
from ..negotiation import MediaType, accept_params, choose_accept, parse_media_type


class Codec:
    """Decodes and encodes one content type (or a range such as ``image/*``).

    Subclasses set :attr:`content_type` and override :meth:`decode` and/or :meth:`encode`;
    a codec that only reads (or only writes) sets :attr:`encodes` (or :attr:`decodes`) False.
    """

    #: The media type handled, lower case; a range like ``image/*`` matches its whole family.
    content_type: ClassVar[str]
    #: Whether the codec reads request bodies.
    decodes: ClassVar[bool] = True
    #: Whether the codec writes responses.
    encodes: ClassVar[bool] = True

    def decode(self, body: bytes, media: MediaType) -> Any:
        """The request *body* as a Python value.

        :raises BadRequest: the body is malformed; the message names the line/position/field.
        """
        raise UnsupportedMediaType(f"{self.content_type} bodies cannot be decoded")

    def encode(self, value: Any, media: MediaType) -> bytes:
        """*value* as a response body of type *media* (parameters as the client asked)."""
        raise NotAcceptable(f"responses cannot be encoded as {self.content_type}")

    def can_encode(self, value: Any) -> bool:
        """True if :meth:`encode` accepts this kind of value."""
        return self.encodes

    def response_type(self, value: Any, media: MediaType) -> str:
        """The response's Content-Type for *value* encoded as *media*."""
        return media.mime

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.content_type}>"


def charset_problem(charset: str) -> str | None:
    """Why *charset* cannot encode text: ``"unknown"``, ``"not a text encoding"`` (Python's
    codec registry also holds bytes-to-bytes and str-to-str codecs such as ``base64``,
    ``zlib`` and ``rot13``, which are no charsets), or None when it is a text encoding."""
    try:
        name = _stdlib_codecs.lookup(charset).name
    except (LookupError, ValueError):  # ValueError: a NUL in the name
        return "unknown"
    try:
        "".encode(name)  # LookupError for codecs that do not turn str into bytes
        b"".decode(name)
    except (LookupError, UnicodeError):  # UnicodeError: "undefined" refuses everything
        return "not a text encoding"
    return None


def text_of(body: bytes, media: MediaType, default_charset: str = "utf-8") -> str:
    """*body* decoded with the media type's charset (a leading UTF-8 BOM is dropped).

    :raises BadRequest: unknown charset, one that is not a text encoding, or bytes invalid in
        it (names the byte position).
    """
    charset = media.charset or default_charset
    problem = charset_problem(charset)
    if problem == "unknown":
        raise BadRequest(f"unknown charset {charset!r} in Content-Type {media.mime}")
    if problem is not None:
        raise BadRequest(f"charset {charset!r} in Content-Type {media.mime} is {problem}")
    name = _stdlib_codecs.lookup(charset).name
    name = "utf-8-sig" if name == "utf-8" else name
    try:
        return body.decode(name)
    except UnicodeDecodeError as exc:
        bad = body[exc.start : exc.start + 1].hex()
        raise BadRequest(
            f"{media.mime} body is not valid {charset}: byte 0x{bad} at position {exc.start}"
        ) from None
    except UnicodeError as exc:  # codecs such as idna raise the base class, without position
        raise BadRequest(f"{media.mime} body is not valid {charset}: {exc}") from None


def _check_accept_charset(media: MediaType) -> None:
    """406 for an Accept charset we cannot write text in."""
    charset = media.charset
    if charset is None:
        return
    problem = charset_problem(charset)
    if problem is not None:
        raise NotAcceptable(
            f"charset {charset!r} in Accept {media.mime} is {problem}; ask for a text "
            "encoding such as utf-8"
        )


def _unrepresentable(media: MediaType, exc: UnicodeError) -> NotAcceptable | None:
    """406 when the client's own charset choice cannot hold the prediction (None when no
    charset other than UTF-8 was asked for: then the prediction itself is at fault)."""
    charset = media.charset
    if charset is None or _stdlib_codecs.lookup(charset).name == "utf-8":
        return None
    if isinstance(exc, UnicodeEncodeError):
        bad = exc.object[exc.start : exc.start + 1]
        where = f"character {bad!r} at position {exc.start}"
    else:  # codecs such as idna raise the base class, without a position
        where = str(exc)
    return NotAcceptable(
        f"the prediction cannot be written in charset {charset!r} (Accept): {where}; ask for utf-8"
    )


def _is_range(mime: str) -> bool:
    return mime.endswith("/*")


class CodecRegistry:
    """Codecs by content type, in registration order (which breaks ties in negotiation).

    :param codecs: codecs to register at once.
    """

    def __init__(self, codecs: Iterable[Codec] = ()) -> None:
        self._codecs: dict[str, Codec] = {}
        for codec in codecs:
            self.register(codec)

    def register(self, codec: Codec) -> Codec:
        """Add *codec*; returns it.

        :raises ValueError: a codec for the same content type is registered already (use a
            fresh registry or :meth:`replace` to swap one deliberately).
        """
        mime = codec.content_type.lower()
        if mime in self._codecs:
            raise ValueError(
                f"a codec for {mime} is registered already ({self._codecs[mime]!r}); "
                "use replace() to swap it"
            )
        self._codecs[mime] = codec
        return codec

    def replace(self, codec: Codec) -> Codec:
        """Register *codec*, replacing any codec for the same content type."""
        self._codecs[codec.content_type.lower()] = codec
        return codec

    def __contains__(self, mime: object) -> bool:
        return isinstance(mime, str) and mime.lower() in self._codecs

    def __iter__(self) -> Any:
        return iter(self._codecs.values())

    @property
    def decodable_types(self) -> tuple[str, ...]:
        """Every content type a request may have, in registration order."""
        return tuple(mime for mime, codec in self._codecs.items() if codec.decodes)

    @property
    def encodable_types(self) -> tuple[str, ...]:
        """Every content type a response may have, in registration order."""
        return tuple(mime for mime, codec in self._codecs.items() if codec.encodes)

    def _find(self, media: MediaType, *, decoding: bool) -> Codec | None:
        codec = self._codecs.get(media.mime)
        if codec is not None and (codec.decodes if decoding else codec.encodes):
            return codec
        for mime, candidate in self._codecs.items():
            usable = candidate.decodes if decoding else candidate.encodes
            if usable and _is_range(mime) and media.matches(mime):
                return candidate
        return None

    def decoder_for(self, media: MediaType) -> Codec:
        """The codec that reads *media*.

        :raises UnsupportedMediaType: none; the message lists the supported types.
        """
        codec = self._find(media, decoding=True)
        if codec is None:
            raise UnsupportedMediaType(
                f"Content-Type {media.mime} is not supported; supported: "
                + ", ".join(self.decodable_types)
            )
        return codec

    def encoder_for(self, mime: str) -> Codec:
        """The codec that writes *mime* (a type, or a range such as ``image/*``).

        :raises NotAcceptable: none; the message lists the supported types.
        """
        try:
            media = parse_media_type(mime)
        except ValueError:
            media = None
        codec = None
        if media is not None:
            codec = self._codecs.get(media.mime) or self._find(media, decoding=False)
        if codec is None or not codec.encodes:
            raise NotAcceptable(
                f"Accept type {mime} is not supported; supported: "
                + ", ".join(self.encodable_types)
            )
        return codec

    def decode(self, body: bytes, media: MediaType) -> Any:
        """Decode *body* with the codec for *media* (415 / 400 as :meth:`decoder_for` and
        :meth:`Codec.decode` raise)."""
        return self.decoder_for(media).decode(body, media)

    def encode(
        self, value: Any, accept_header: str | None, default_accept: str
    ) -> tuple[bytes, str]:
        """Encode a prediction for the client: ``(body, content_type)``.

        The response type is the best type the *accept_header* allows among the codecs that
        can encode *value* (``*/*`` or no header: *default_accept*, or the first capable codec
        when the default cannot represent *value*). Accept parameters (``charset``,
        ``verbose`` ...) reach the codec in its :class:`MediaType`.

        :raises NotAcceptable: no acceptable type can represent *value*.
        :raises ModelError: the chosen codec failed on *value* (a prediction of an
            unexpected shape).
        """
        mime = choose_accept(accept_header, self.encodable_types, default_accept)
        codec = self._encoder_or_none(mime)
        if codec is None or not codec.can_encode(value):
            mime = self._fallback(value, mime, accept_header, default_accept)
        if _is_range(mime):
            mime = self._concrete(mime, accept_header)
        codec = self.encoder_for(mime)
        media = parse_media_type(mime)
        params = accept_params(accept_header, mime)
        if params:
            media = MediaType(media.type, media.subtype, params)
        _check_accept_charset(media)
        try:
            body = codec.encode(value, media)
        except (NotAcceptable, BadRequest):
            raise
        except UnicodeError as exc:
            refused = _unrepresentable(media, exc)
            if refused is None:
                raise ModelError(f"could not encode the prediction as {mime}: {exc}") from exc
            raise refused from None
        except (TypeError, ValueError) as exc:
            raise ModelError(f"could not encode the prediction as {mime}: {exc}") from exc
        return body, codec.response_type(value, media)

    def _encoder_or_none(self, mime: str) -> Codec | None:
        try:
            return self.encoder_for(mime)
        except NotAcceptable:
            return None

    def _fallback(self, value: Any, wanted: str, accept_header: str | None, default: str) -> str:
        """The best acceptable type among the codecs that can encode *value*."""
        capable = [
            mime
            for mime, codec in self._codecs.items()
            if codec.encodes and codec.can_encode(value)
        ]
        if not capable:
            raise NotAcceptable(f"no codec can encode a prediction of type {type(value).__name__}")
        try:
            mime = choose_accept(accept_header, capable, default)
        except NotAcceptable:
            raise NotAcceptable(
                f"a prediction of type {type(value).__name__} cannot be encoded as {wanted}; "
                f"it can be encoded as: {', '.join(capable)}"
            ) from None
        # No Accept or */*, and the default cannot represent this value: any type will do.
        return mime if mime in capable else capable[0]

    @staticmethod
    def _concrete(range_mime: str, accept_header: str | None) -> str:
        """A concrete type in *range_mime* named by the Accept header, else the range itself."""
        family = range_mime[:-2]
        for item in (accept_header or "").split(","):
            try:
                media = parse_media_type(item)
            except ValueError:
                continue
            if media.type == family and media.subtype != "*":
                return media.mime
        return range_mime
