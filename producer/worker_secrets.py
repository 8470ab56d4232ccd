"""The secrets of the Prefect flows come from the worker's environment.

Prefect stores every flow-run parameter in plain text on its server (the UI
shows them, the API returns them), sub-flow runs' too. So the flows in
``flows/`` never take a secret as a parameter they pass on: the pgSTAC DSN
is read from ``STAC_PGSTAC_DSN`` in the environment of the process that runs
the flow (the worker's, as the CLI and the event handler read it), and a DSN
holding a password given as a flow parameter (``options.pgstac``) is
refused, naming the variable to use instead. A DSN without a password
(``postgresql:///stac``: peer or ``.pgpass`` authentication) is no secret
and may still be a parameter. Storage credentials likewise come from the
worker (an IAM role, its ``AWS_*`` variables): errors raised in a flow run
spell their credentials hint that way (:func:`flow_spelling`), never as
``storage_options``. Pure functions, nothing is read but the environment.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from producer.errors import CREDENTIALS_HINT, Hint, InputError, python_spelling
from producer.options import RegisterOptions, option_spec
from producer.store.open import refuse_credentials

__all__ = [
    "SECRET_FIELDS",
    "dsn_has_password",
    "flow_phrased",
    "flow_spelling",
    "refuse_catalog_credentials",
    "refuse_secret_parameters",
    "refuse_storage_credentials",
    "with_worker_secrets",
]

#: the :class:`RegisterOptions` fields that are secrets (kind ``secret``: the pgSTAC DSN)
SECRET_FIELDS: tuple[str, ...] = tuple(
    f.name for f in dataclasses.fields(RegisterOptions) if option_spec(f).kind == "secret"
)

#: ``password=...`` (or the client key's ``sslpassword=...``) in a key/value
#: connection string (``host=db password=x dbname=stac``)
_KEYWORD_PASSWORD = re.compile(r"(?:^|\s)(?:ssl)?password\s*=", re.IGNORECASE)
#: the ``dbname`` of a key/value connection string, quoted or not: libpq
#: reads one that is itself a connection string (a URL, or holding ``=``) as one
_KEYWORD_DBNAME = re.compile(r"(?:^|\s)dbname\s*=\s*(?:'((?:[^'\\]|\\.)*)'|(\S+))", re.IGNORECASE)
#: query parameters of a URL connection string that hold a password
_PASSWORD_PARAMETERS = frozenset({"password", "sslpassword"})


def dsn_has_password(dsn: str) -> bool:
    """Whether the PostgreSQL connection string ``dsn`` carries a password:
    ``postgresql://user:PW@host/db``, ``...?password=PW`` or the key/value
    form's ``password=PW``; the client key's ``sslpassword`` too, and a
    ``dbname`` that is itself a connection string holding one (libpq
    expands it)."""
    if "://" not in dsn or not dsn.lstrip().lower().startswith(("postgresql://", "postgres://")):
        if _KEYWORD_PASSWORD.search(dsn):
            return True
        return any(
            ("=" in name or "://" in name) and dsn_has_password(name.replace("\\'", "'"))
            for name in (quoted or bare for quoted, bare in _KEYWORD_DBNAME.findall(dsn))
        )
    try:
        parts = urlsplit(dsn)
        if parts.password:
            return True
    except ValueError:  # a malformed authority: it may still hold one
        return "@" in dsn.split("://", 1)[1].split("/", 1)[0]
    if "@" in parts.path and ":" in (parts.netloc + parts.path).split("@", 1)[0]:
        return True  # a '/' in the password ended the authority early: "u:Pa" then "/ss@db/stac"
    query = parse_qsl(parts.query)
    return any(key.lower() in _PASSWORD_PARAMETERS for key, _ in query) or any(
        key.lower() == "dbname" and ("=" in value or "://" in value) and dsn_has_password(value)
        for key, value in query
    )


def refuse_secret_parameters(options: RegisterOptions | None, parameter: str = "options") -> None:
    """Raise :class:`InputError` when ``options`` (a flow parameter called
    ``parameter``) holds a pgSTAC DSN with a password. The message names
    neither the DSN nor the password: it says to rotate the password (Prefect
    stored it with the run's parameters before the flow could refuse it) and
    to set ``STAC_PGSTAC_DSN`` in the worker's environment instead."""
    if options is None:
        return
    for name in SECRET_FIELDS:
        value = getattr(options, name)
        if isinstance(value, str) and dsn_has_password(value):
            env = option_spec(next(f for f in dataclasses.fields(RegisterOptions) if f.name == name)).env
            raise InputError(
                f"{parameter}.{name} holds a database password: Prefect stores flow-run parameters "
                "in plain text (the UI and the API show them), so it is now stored with this run; "
                f"change that password. Leave {parameter}.{name} unset and set {env} in the "
                "environment of the worker that runs the flow (the flow reads it there), or give a "
                "DSN without a password (peer authentication, a .pgpass file or PGPASSWORD on the worker)."
            )


#: storage option names (any depth, any case) that hold a credential: s3fs's
#: ``key``/``secret``/``token``, botocore's ``aws_*``, and other fsspec
#: backends' (Azure ``account_key``/``sas_token``, OAuth ``client_secret``)
_CREDENTIAL_OPTIONS = frozenset(
    {
        "key",
        "secret",
        "token",
        "password",
        "session_token",
        "access_key",
        "secret_key",
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
        "account_key",
        "sas_token",
        "client_secret",
        "credential",
        "credentials",
    }
)


#: ``token`` values that name a way to authenticate, not a secret (gcsfs)
_NO_SECRET_TOKENS = frozenset({"anon", "google_default", "cloud", "browser", "cache"})


def _credential_path(options: Any, path: str) -> str | None:
    """The dotted name of the first credential inside ``options`` (a
    mapping, nested ones too), or None. Names only, never values."""
    if not isinstance(options, Mapping):
        return None
    for name, value in options.items():
        if (
            str(name).lower() in _CREDENTIAL_OPTIONS
            and value not in (None, "", False)
            and not (isinstance(value, str) and value.lower() in _NO_SECRET_TOKENS)
        ):
            return f"{path}.{name}"
        inner = _credential_path(value, f"{path}.{name}")
        if inner is not None:
            return inner
    return None


def refuse_storage_credentials(
    storage_options: Mapping[str, Any] | None, options: RegisterOptions | None = None
) -> None:
    """Raise :class:`InputError` when a flow's ``storage_options`` parameter,
    or the storage options of its ``options`` parameter, hold a credential
    (:data:`_CREDENTIAL_OPTIONS`): Prefect has stored it in plain text with
    the run's parameters, so the message says to rotate it and to give the
    worker its credentials instead. Names where, never the value."""
    found = _credential_path(storage_options, "storage_options")
    if found is None and options is not None:
        for name in ("catalog_storage_options", "data_storage_options"):
            found = found or _credential_path(getattr(options, name), f"options.{name}")
    if found is None:
        return
    raise InputError(
        f"{found} holds storage credentials: Prefect stores flow-run parameters in plain text (the UI "
        "and the API show them), so they are now stored with this run; rotate them. Leave them out of "
        "the flow's parameters: give the worker that runs the flow an IAM role, or AWS_ACCESS_KEY_ID "
        "and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) in its environment."
    )


def with_worker_secrets(
    options: RegisterOptions | None, environ: Mapping[str, str] | None = None
) -> RegisterOptions | None:
    """``options`` with each secret field it leaves unset read from the
    environment (``STAC_PGSTAC_DSN``; ``os.environ`` by default); ``options``
    itself (``None`` too) when the environment sets none of them."""
    env = os.environ if environ is None else environ
    found: dict[str, Any] = {}
    for f in dataclasses.fields(RegisterOptions):
        if f.name in SECRET_FIELDS and (options is None or getattr(options, f.name) is None):
            value = (env.get(option_spec(f).env) or "").strip()
            if value:
                found[f.name] = value
    if not found:
        return options
    return dataclasses.replace(options, **found) if options is not None else RegisterOptions(**found)


#: where a flow run's storage credentials come from, in place of storage options
WORKER_CREDENTIALS = (
    "an IAM role for the worker that runs the flow, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
    "(or AWS_PROFILE) in the environment of the worker (not storage_options: Prefect stores flow "
    "parameters in plain text)"
)


def flow_spelling(hint: Hint) -> str:
    """A hint as a flow run's error writes it: credentials (a ``storage_options``
    hint whose example holds ``key``/``secret``) as the worker's role or
    environment, every other hint as a Python keyword argument (a flow
    parameter, :func:`~producer.errors.python_spelling`)."""
    secret_keys = {"key", "secret", "token", "password"}
    if (
        hint.option == "storage_options"
        and isinstance(hint.example, Mapping)
        and secret_keys & {str(k).lower() for k in hint.example}
    ):
        return WORKER_CREDENTIALS
    return python_spelling(hint)


@contextlib.contextmanager
def flow_phrased() -> Iterator[None]:
    """Inside the block, an :class:`InputError` with a credentials hint is
    raised again with its hints spelled for a flow run (:func:`flow_spelling`:
    the worker's role or environment, not ``storage_options``), not chained
    to the original; any other error as it is."""
    try:
        yield
    except InputError as exc:
        if CREDENTIALS_HINT in exc.hints:
            raise InputError(_url_credentials(exc.fact)) from None
        if all(flow_spelling(h) == python_spelling(h) for h in exc.hints):
            raise  # no hint a flow spells otherwise: the error as it is
        raise InputError(exc.phrased(flow_spelling)) from None


def _url_credentials(fact: str) -> str:
    """The refusal of credentials inside a catalog or product URL
    (``s3://KEY:SECRET@bucket/...``, its fact ``fact`` naming the URL
    masked) as a flow run says it: that URL is one of the run's parameters,
    which Prefect has already stored in plain text, so the credentials are
    to be rotated, and the way in is the worker's, never storage options."""
    where, _, rest = fact.partition(": credentials inside a ")
    proto = rest.split("://", 1)[0] if "://" in rest else "storage"
    return (
        f"{where}: credentials inside a {proto}:// URL are not supported: Prefect stores flow-run "
        "parameters in plain text (the UI and the API show them), so a URL given as one is now stored "
        "with this run; rotate these credentials. Give the URL without them, and the credentials "
        f"through {WORKER_CREDENTIALS}."
    )


def refuse_catalog_credentials(catalog: str) -> None:
    """:func:`~producer.store.open.refuse_credentials` for a flow's ``catalog``
    parameter: the :class:`InputError` advises the worker's credentials
    (:func:`flow_spelling`), not storage options."""
    with flow_phrased():
        refuse_credentials(catalog)
