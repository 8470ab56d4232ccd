"""One error hierarchy for the whole package.

Every error subclasses :class:`ProducerError` *and* the built-in it behaves
like, so callers can catch either. Messages name the object (file, document
key, catalog URL) and say how to fix the problem.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from producer.redact import redact


@dataclass(frozen=True)
class Hint:
    """A way out of an error, independent of how the caller spells options.

    ``option``: the :class:`~producer.options.RegisterOptions` field or verb
    parameter it concerns (``id_template``); ``example``: a value to give it
    (``True`` for a switch); ``does``: what giving it does. The library phrases
    a hint for Python (``id_template='{parent}_{stem}'``); the CLI, the event
    handler and the Prefect adapter phrase the same hint for their users.

    ``verb``: the call to make with that option, when it is not the call
    that failed (``reconcile``, for ``fix=True``): then the hint is spelled
    as that call (``producer.reconcile(..., fix=True)``, ``stac-producer
    reconcile CATALOG --fix``).
    """

    option: str
    example: Any
    does: str
    verb: str = ""

    def to_dict(self) -> dict[str, Any]:
        out = {"option": self.option, "example": _redacted(self.example), "does": self.does}
        if self.verb:
            out["verb"] = self.verb
        return out


def _redacted(value: Any) -> Any:
    """``value`` (a hint's example) with every text in it redacted: an
    example may be built from the caller's own value (a lineage naming a
    URL with its password)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(v) for v in value]
    return value


#: spells one hint's option and example for a kind of caller
Spelling = Callable[[Hint], str]


def python_spelling(hint: Hint) -> str:
    """``id_template='{parent}_{stem}'``: a keyword argument (also a Prefect
    parameter); ``producer.reconcile(..., fix=True)`` for a hint naming a verb."""
    if hint.verb:
        return f"producer.{hint.verb}(..., {hint.option}={hint.example!r})"
    return f"{hint.option}={hint.example!r}"


def phrase_hints(hints: Iterable[Hint], spell: Spelling = python_spelling) -> str:
    """The sentence that follows an error's fact: ``" Fix it with X (does), or Y (does)."``;
    empty without hints."""
    parts = [redact(f"{spell(h)} ({h.does})") for h in hints]  # like the fact: an example may hold a URL
    if not parts:
        return ""
    return " Fix it with " + ", or ".join(parts)


#: same file name in two folders, or a template that drops what tells products apart
ID_TEMPLATE_HINT = Hint("id_template", "{parent}_{stem}", "give the products different ids")
#: an existing item of another product is to be overwritten
REPLACE_HINT = Hint("replace", True, "overwrite the existing item")
#: a collection's stac-geoparquet mirror is missing or behind: reconcile's fix rebuilds it
REBUILD_MIRROR_HINT = Hint("fix", True, "rebuild the collection's mirror from its items", verb="reconcile")
#: the way out of credentials in a catalog or product URL (the CLI spells it
#: ``-o key=KEY -o secret=SECRET``)
CREDENTIALS_HINT = Hint(
    "storage_options", {"key": "KEY", "secret": "SECRET"}, "the credentials apart from the URL"
)


def timeout_hint(which: str, seconds: float) -> Hint:
    """The way out of an S3 request that got no answer within its ``which``
    (``read`` or ``connect``) timeout of ``seconds``: a longer one, as the
    storage option botocore takes (the CLI spells it
    ``-o 'config_kwargs={"read_timeout": 120}'``)."""
    longer = max(60, int(2 * seconds + 0.5))
    return Hint(
        "storage_options", {"config_kwargs": {f"{which}_timeout": longer}}, "wait longer for an answer"
    )


#: no AWS credentials were found: give them as storage options (the CLI spells
#: it ``-o key=KEY -o secret=SECRET``, the event handler ``STAC_STORAGE_OPTIONS``)
NO_CREDENTIALS_HINT = Hint("storage_options", {"key": "KEY", "secret": "SECRET"}, "give the credentials")


def as_typed(text: str) -> str:
    """``text`` (a regular expression the caller gave) quoted as it was
    typed: its repr doubles each backslash, and ``\\d`` copied back from a
    message matches a backslash, not a digit."""
    return f"'{text}'" if "'" not in text else f'"{text}"'


class ProducerError(Exception):
    """Base class of every error raised on purpose by stac-producer.

    ``hints``: structured ways out (:class:`Hint`), phrased for Python at the
    end of the message; ``fact``: the message without them, for callers that
    phrase the hints themselves (:meth:`phrased`).

    The message is redacted (:func:`~producer.redact.redact`): messages
    name catalogs, stores and products by URL (``f"... {store.url}"``), and
    a URL may carry ``user:pw@`` or ``?sig=...``; one place here covers
    every such message, whoever builds it.
    """

    def __init__(self, *args: Any, hints: Iterable[Hint] = ()) -> None:
        self.hints: tuple[Hint, ...] = tuple(hints)
        if args and isinstance(args[0], str):
            args = (redact(args[0]), *args[1:])
        self.fact: str = str(args[0]) if args else ""
        if self.hints:
            # the hint is a sentence of its own: "... not 0. Fix it with ..."
            stop = "" if self.fact.rstrip().endswith((".", "!", "?", ":")) else "."
            args = (self.fact + stop + phrase_hints(self.hints), *args[1:])
        super().__init__(*args)

    @property
    def hint(self) -> Hint | None:
        """The first hint, or ``None``."""
        return self.hints[0] if self.hints else None

    def phrased(self, spell: Spelling) -> str:
        """The message with the hints spelled by ``spell`` (a CLI flag, an env var)."""
        return rephrase(str(self), self.hints, spell)


def rephrase(message: str, hints: Iterable[Hint], spell: Spelling) -> str:
    """``message`` (which ends with, or contains, the Python phrasing of
    ``hints``) with the hints spelled by ``spell`` instead."""
    hints = tuple(hints)
    python = phrase_hints(hints)
    if not python or python not in message:
        return message
    return message.replace(python, phrase_hints(hints, spell))


class InputError(ProducerError, ValueError):
    """A product or an option is unusable; nothing was written."""


class NoGeoreferenceError(InputError):
    """The raster has neither a CRS with a geotransform nor GCPs."""


class NoDatetimeError(InputError):
    """No datetime source produced a value for the product."""


class UnsafeIdError(InputError):
    """An item or collection id is not safe to use as a path segment."""


class CatalogError(ProducerError, ValueError):
    """An existing catalog document is malformed or not the STAC we expect."""


class ValidationError(ProducerError, ValueError):
    """A document failed JSON-schema validation; it was not written.

    ``errors`` holds one message per problem, each starting with the JSON path.
    """

    def __init__(self, message: str, errors: list[str] | None = None) -> None:
        super().__init__(message)
        self.errors: list[str] = list(errors or [])


class StoreError(ProducerError, OSError):
    """Storage failed (permissions, network, unsupported backend)."""


class MissingBucket(StoreError):
    """The catalog's bucket does not exist: a typo, or a set-up step not
    done yet. A storage error (retried) where a catalog is written, since
    the bucket may be on its way; the verbs that read an existing catalog
    (validate, reconcile, remove, search) say "no catalog at" instead
    (:class:`InputError`), as for an empty prefix or a mistyped path."""

    bucket: str = ""


def missing_bucket(bucket: str, url: str) -> MissingBucket:
    """The :class:`MissingBucket` of the catalog ``url`` in ``bucket``."""
    error = MissingBucket(f"bucket {bucket!r} of catalog {url} does not exist; create it or fix the URL")
    error.bucket = bucket
    return error


def no_catalog_in(error: MissingBucket, url: str) -> InputError:
    """What a verb reading the catalog ``url`` says of its missing bucket."""
    bucket = getattr(error, "bucket", "")
    return InputError(
        f"no catalog at {url}: its bucket {bucket!r} does not exist; check the URL (or create the bucket)"
    )


class NotFound(StoreError, FileNotFoundError):
    """The document does not exist in the store."""


class PreconditionFailed(StoreError):
    """A conditional write lost: the document changed (or exists) since read.

    Raised by stores; the commit layer catches it and retries.
    """


class ConflictError(ProducerError, RuntimeError):
    """Compare-and-swap retries were exhausted for a document."""


#: botocore's errors for a credential chain that found nothing (or half a key
#: pair); matched by name: botocore comes with the optional [s3] extra
#: botocore's: no credentials, half of them, or a profile (AWS_PROFILE, the
#: profile option) that names none of the AWS config or credentials files
_NO_CREDENTIALS = frozenset({"NoCredentialsError", "PartialCredentialsError", "ProfileNotFound"})


def missing_credentials(exc: BaseException) -> BaseException | None:
    """The botocore ``NoCredentialsError``/``PartialCredentialsError`` that
    ``exc`` is or wraps (s3fs and fsspec re-raise it as a cause), or None."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if _NO_CREDENTIALS & {c.__name__ for c in type(cur).__mro__}:
            return cur
        cur = cur.__cause__ or cur.__context__
    return None


def credentials_error(where: str, cause: BaseException) -> InputError:
    """The error for an S3 request that found no AWS credentials (``cause``,
    see :func:`missing_credentials`): the caller's configuration, which a
    retry cannot fix. ``where``: the object or catalog, already redacted."""
    profile = (
        " to a profile of the AWS config or credentials files,"
        if type(cause).__name__ == "ProfileNotFound"
        else ""
    )
    return InputError(
        f"{where}: no AWS credentials found ({redact(f'{type(cause).__name__}: {cause}')}): set "
        f"AWS_PROFILE{profile} or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or give key/secret storage options",
        hints=(NO_CREDENTIALS_HINT,),
    )
