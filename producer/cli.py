"""``stac-producer``: parse arguments, call :mod:`producer.api`, print.

Exit codes: 0 all done, 1 some products (or checks) failed, 2 usage error.

Cold start: importing this module loads click and nothing of the write path,
so ``stac-producer --help`` costs the interpreter plus click. Each command
imports what it uses when it runs (``producer.api``: pystac, fsspec, the
extractors); the flags generated from :class:`~producer.options.RegisterOptions`
are built when a command first needs its parameters (parsing its arguments or
printing its own ``--help``), not when the group lists the commands. Run as
the program, the process asks numpy's OpenBLAS for one thread and skips
interpreter teardown at exit (:mod:`producer.process`).
"""

from __future__ import annotations

import json
import re
import shlex
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TextIO, TypeVar

import click

from producer.sources import PRODUCT_SUFFIXES, ordinal  # light: no write-path import

if TYPE_CHECKING:
    from producer.options import OptionSpec, RegisterOptions

F = TypeVar("F", bound=Callable[..., Any])


def _table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    """A plain aligned text table."""
    cells = [[str(h) for h in headers]] + [[("" if c is None else str(c)) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _spelling(hint: Any) -> str:
    """A hint as the CLI writes it (:func:`producer.options.flag_spelling`,
    which spells ``storage_options`` as ``-o KEY=VALUE`` pairs)."""
    from producer.options import flag_spelling  # noqa: PLC0415 (see the module doc)

    return flag_spelling(hint)


def _no_products_found(paths: Sequence[str], *, grouped: bool, storage_options: dict[str, Any] | None) -> str:
    """Why ``register PATHS`` found nothing (:func:`producer.sources.no_products_found`:
    the endings searched for, with --group those of the group's files too,
    and the endings the folders hold instead), and the ways to register other files."""
    import shlex  # noqa: PLC0415 (this path only)

    from producer.grouping import GROUP_SUFFIXES  # noqa: PLC0415
    from producer.sources import PRODUCT_SUFFIXES, no_products_found  # noqa: PLC0415

    suffixes = GROUP_SUFFIXES if grouped else PRODUCT_SUFFIXES
    text, example = no_products_found(paths, suffixes=suffixes, storage_options=storage_options)
    if not example:  # a glob that matched nothing
        return text
    return f"{text}. Name such files one by one, or match them with a glob: {shlex.quote(example)}"


class _RegisterFlags:
    """Stands in a command's parameter list for the options generated from
    :class:`~producer.options.RegisterOptions` (see :func:`register_option_flags`)
    until :attr:`_Command.params` first expands it: the options module and
    everything it imports are loaded only when that command runs or shows its
    own help."""

    def __init__(self, names: Iterable[str] | None) -> None:
        self.names = None if names is None else frozenset(names)

    def expand(self) -> list[click.Parameter]:
        """One click option per chosen field, in field order."""
        from dataclasses import fields  # noqa: PLC0415 (dataclasses loads inspect: see the module doc)

        from producer.options import RegisterOptions, option_spec  # noqa: PLC0415

        chosen = [f for f in fields(RegisterOptions) if self.names is None or f.name in self.names]
        out: list[click.Parameter] = []
        for f in chosen:

            def holder() -> None:  # pragma: no cover (never called: only collects the option)
                pass

            _click_option(f.name, option_spec(f), f.default)(holder)
            out += holder.__click_params__  # type: ignore[attr-defined]
        return out


class _Command(click.Command):
    """A command whose library errors become CLI errors, in one place: bad
    input is a usage error (exit 2), any other project error exit 1; hints
    are spelled as flags and credentials redacted. Its :attr:`params` expand
    the :class:`_RegisterFlags` placeholders on first use."""

    _params: list[Any]

    @property
    def params(self) -> list[click.Parameter]:
        if any(isinstance(p, _RegisterFlags) for p in self._params):
            expanded: list[Any] = []
            for p in self._params:
                expanded += p.expand() if isinstance(p, _RegisterFlags) else [p]
            self._params = expanded
        return self._params

    @params.setter
    def params(self, value: list[click.Parameter]) -> None:
        self._params = value

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        given = list(args)  # click consumes ``args``
        try:
            return super().parse_args(ctx, args)
        except click.NoSuchOption as exc:
            # register and remove take -c/--catalog; the others take the catalog as an argument
            takes_catalog = any(isinstance(p, click.Argument) and p.name == "catalog" for p in self.params)
            if exc.option_name not in ("-c", "--catalog") or not takes_catalog:
                raise
            catalog = "./stac"
            for i, arg in enumerate(given):
                if arg == exc.option_name and i + 1 < len(given):
                    catalog = given[i + 1]
                elif arg.startswith(f"{exc.option_name}="):
                    catalog = arg.split("=", 1)[1]
            from producer.redact import redact  # noqa: PLC0415

            raise click.NoSuchOption(
                exc.option_name,
                message=f"No such option '{exc.option_name}': the catalog is the first argument of "
                f"{self.name}, without a flag (e.g. stac-producer {self.name} {shlex.quote(redact(catalog))})",
                ctx=ctx,
            ) from None

    def invoke(self, ctx: click.Context) -> Any:
        from producer.errors import InputError, ProducerError  # noqa: PLC0415 (see the module doc)
        from producer.redact import redact  # noqa: PLC0415

        try:
            return super().invoke(ctx)
        except InputError as exc:
            raise click.UsageError(redact(exc.phrased(_spelling)), ctx=ctx) from exc
        except ProducerError as exc:
            raise click.ClickException(redact(exc.phrased(_spelling))) from exc


class _Group(click.Group):
    command_class = _Command

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """Run the program. When it is *the* program (called from the
        ``__main__`` module: the console script or ``python -m producer.cli``;
        arguments from ``sys.argv``, standalone mode), prepare the process and
        end it with :func:`producer.process.quick_exit` (no interpreter
        teardown); any other caller (a module calling ``main()``, tests,
        ``CliRunner``, ``args`` passed, standalone mode off) gets click's own
        behaviour: a ``SystemExit`` it can catch."""
        if args is not None or not standalone_mode or not _called_by_main_module():
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        from producer import process  # noqa: PLC0415 (see the module doc)

        process.prepare()
        try:
            super().main(args, prog_name, complete_var, standalone_mode, **extra)
        except SystemExit as exc:
            process.quick_exit(exc.code)
        process.quick_exit(0)


def _called_by_main_module() -> bool:
    """Whether the code that called the group (past :meth:`_Group.main`
    and click's frames) is the ``__main__`` module: the process is this program."""
    frame = sys._getframe(1)
    while frame is not None and (
        frame.f_code is _Group.main.__code__ or frame.f_globals.get("__name__", "").startswith("click.")
    ):
        frame = frame.f_back  # type: ignore[assignment]
    return frame is not None and frame.f_globals.get("__name__") == "__main__"


#: storage options whose VALUE is always text, even when it reads as JSON:
#: credentials and names (a secret of digits is a secret, not a number)
_TEXT_STORAGE_OPTIONS = frozenset({"key", "secret", "token", "profile", "endpoint_url", "region_name"})
#: the leading name a malformed pair may show: lowercase, like every
#: s3fs/fsspec option (a secret's mixed case or digits never match)
_OPTION_NAME = re.compile(r"[a-z][a-z_]{0,39}")


def _storage_value(key: str, text: str) -> Any:
    """A pair's VALUE: read as JSON when it is JSON (``false``, ``5``,
    ``{"read_timeout": 5}``), else the text; the options of
    :data:`_TEXT_STORAGE_OPTIONS` stay text."""
    if key in _TEXT_STORAGE_OPTIONS:
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def _malformed_pair(pair: str, position: int, flag: str) -> click.BadParameter:
    """The error for a pair without ``=``; it never echoes the text, which
    may be a secret (``secret:VALUE``): at most a leading lowercase option
    name, and the pair's position."""
    head = re.split(r"[:\s]", pair, maxsplit=1)
    shown = ""
    if len(head) == 2 and _OPTION_NAME.fullmatch(head[0]):
        shown = f" (starting with {head[0]!r})"
    nth = {1: "1st", 2: "2nd", 3: "3rd"}.get(position, f"{position}th")
    return click.BadParameter(
        f"the {nth} value{shown} is not KEY=VALUE (its text is not shown: it may hold a secret); "
        f"write it as {flag} KEY=VALUE",
        param_hint=flag,
    )


def _storage_options(pairs: Sequence[str], flag: str = "--storage-option") -> dict[str, Any]:
    """``KEY=VALUE`` pairs → fsspec storage options. VALUE is read as JSON
    when it is JSON (``anon=false`` is False, ``config_kwargs={"read_timeout": 5}``
    a dict), except for credentials and names (:data:`_TEXT_STORAGE_OPTIONS`);
    ``endpoint_url`` goes into ``client_kwargs``, where s3fs reads it."""
    out: dict[str, Any] = {}
    for position, pair in enumerate(pairs, 1):
        if "=" not in pair:
            raise _malformed_pair(pair, position, flag)
        key, text = pair.split("=", 1)
        key = key.strip()
        value = _storage_value(key, text)
        if key == "endpoint_url":
            out.setdefault("client_kwargs", {})["endpoint_url"] = value
        elif key == "client_kwargs":
            if not isinstance(value, dict):
                raise click.BadParameter(
                    f'client_kwargs must be a JSON object (client_kwargs=\'{{"region_name": "eu-west-1"}}\'), '
                    f"not {type(value).__name__}",
                    param_hint=flag,
                )
            out["client_kwargs"] = {**value, **out.get("client_kwargs", {})}
        else:
            out[key] = value
    return out


def _text_pairs(pairs: Sequence[str], flag: str) -> dict[str, str]:
    """``NAME=VALUE`` pairs whose VALUE is text as given (``--software
    gdal=3.10`` is version "3.10", not the number 3.1): every ``pairs``
    option but the storage options, which read VALUE as JSON."""
    out: dict[str, str] = {}
    for position, pair in enumerate(pairs, 1):
        if "=" not in pair:
            raise _malformed_pair(pair, position, flag)
        key, text = pair.split("=", 1)
        out[key.strip()] = text
    return out


#: reconcile and handle-event register products too: they offer every register
#: option, so each hint a registration error carries names a flag they have


def _provider(text: str) -> dict[str, Any]:
    """A ``--provider`` value (``NAME[:ROLES[:URL]]`` or a JSON object) as a
    provider object, read as ``--item-provider`` reads its values (a JSON
    object whole, roles trimmed, ``NAME:s3://...`` a URL); one it refuses is
    a usage error naming this flag."""
    from producer.errors import InputError  # noqa: PLC0415 (see the module doc)
    from producer.provenance import parse_providers  # noqa: PLC0415

    try:
        # an unknown role is left to the new collection's check, whose fix lists the roles it takes
        [provider] = parse_providers([text], check_roles=False)
    except InputError as exc:
        raise click.BadParameter(
            f"{exc.fact}; give NAME[:ROLES[:URL]], e.g. 'ESA:producer,licensor:https://www.esa.int', "
            "or a JSON object",
            param_hint="--provider",
        ) from None
    return provider


catalog_option = click.option(
    "--catalog",
    "-c",
    required=True,
    envvar="STAC_CATALOG",
    show_envvar=True,
    help="Catalog root: a local path, file://, memory:// or s3:// URL (its folder; a path "
    "ending in /catalog.json names that folder).",
)
collection_option = click.option(
    "--collection",
    required=True,
    envvar="STAC_COLLECTION",
    show_envvar=True,
    help="Collection id (created on first use).",
)
#: remove: the same flag, of a collection that must exist (remove never creates one)
existing_collection_option = click.option(
    "--collection",
    required=True,
    envvar="STAC_COLLECTION",
    show_envvar=True,
    help="Collection id of the item (an existing collection).",
)

#: how validate and reconcile name the repair in a finding's message (the
#: library writes ``reconcile(fix=True)``: audit.REPAIR)
REPAIR_COMMAND = "stac-producer reconcile --fix"

#: remove and reconcile: the same flag and variable as register's --pgstac
pgstac_option = click.option(
    "--pgstac",
    "pgstac",
    default=None,
    envvar="STAC_PGSTAC_DSN",
    show_envvar=True,
    metavar="DSN",
    help="pgSTAC database that follows the catalog, as a PostgreSQL DSN "
    "(postgresql://USER@HOST:PORT/DBNAME). A password never on the command line (ps and the "
    "shell history show it): in PGPASSWORD or ~/.pgpass, or the whole DSN in STAC_PGSTAC_DSN.",
)
#: remove: the same flag as register's --sns-topic
sns_topic_option = click.option(
    "--sns-topic",
    "sns_topic",
    default=None,
    metavar="ARN",
    help="Amazon SNS topic to publish the removal to (arn:aws:sns:REGION:ACCOUNT:NAME).",
)
storage_option = click.option(
    "--storage-option",
    "-o",
    "storage_pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="fsspec storage option, repeatable (endpoint_url=... sets the S3 endpoint); VALUE is read as "
    "JSON when it is JSON (anon=false, config_kwargs='{\"read_timeout\": 20}'), except key, secret, "
    'token, profile and endpoint_url; the region goes in client_kwargs=\'{"region_name": "eu-west-1"}\'.',
)


def _click_option(name: str, spec: OptionSpec, default: Any) -> Callable[[F], F]:
    """The click option of one :class:`RegisterOptions` field. Every option
    defaults to "not given" (``None``, an empty tuple, ``False``), so only what
    the user typed overrides the field's default, which ``--help`` shows."""
    shown = isinstance(default, (str, int)) and not isinstance(default, bool)
    kwargs: dict[str, Any] = {"help": f"{spec.help}  [default: {default}]" if shown else spec.help}
    kwargs["metavar"] = spec.metavar
    if spec.kind == "switch":
        return click.option(spec.flag, name, is_flag=True, default=False, help=spec.help)
    if spec.kind == "secret":  # read from the environment too: no secret on a command line
        return click.option(
            spec.flag,
            name,
            default=None,
            envvar=spec.env,
            show_envvar=True,
            metavar=spec.metavar,
            help=spec.help,
        )
    if spec.kind == "number":
        kwargs["type"] = click.INT
    elif spec.kind == "choice":
        kwargs["type"] = click.Choice(spec.choices)
    elif spec.kind == "repeat":
        kwargs["multiple"] = True
        if spec.choices:
            kwargs["type"] = click.Choice(spec.choices)
    elif spec.kind == "pairs":
        kwargs["multiple"] = True
    return click.option(spec.flag, name, default=None, **kwargs)


def register_option_flags(names: Iterable[str] | None = None) -> Callable[[F], F]:
    """Add one click option per :class:`RegisterOptions` field (or per field
    in ``names``), generated from the field's metadata; a new field appears
    without touching this module. :func:`register_overrides` turns the parsed
    values back into field values. For a :class:`_Command` only: the options
    are generated when the command first needs its parameters (a placeholder
    holds their place until then, see :class:`_RegisterFlags`)."""

    def decorate(fn: F) -> F:
        if not hasattr(fn, "__click_params__"):
            fn.__click_params__ = []  # type: ignore[attr-defined]
        fn.__click_params__.append(_RegisterFlags(names))  # type: ignore[attr-defined]
        return fn

    return decorate


def register_overrides(params: dict[str, Any]) -> dict[str, Any]:
    """Pop the values of the generated options out of ``params`` (a command's
    keyword arguments) and return the ones the user gave, as field values."""
    from dataclasses import fields  # noqa: PLC0415 (see _RegisterFlags)

    from producer.options import RegisterOptions, option_spec  # noqa: PLC0415

    out: dict[str, Any] = {}
    for f in fields(RegisterOptions):
        if f.name not in params:
            continue
        value = params.pop(f.name)
        if value is None or value is False or value == ():  # 0 is a value
            continue
        spec = option_spec(f)
        if spec.kind == "json":
            try:
                value = json.loads(value)
            except ValueError as exc:
                raise click.BadParameter(f"not JSON ({exc})", param_hint=spec.flag) from None
            if not isinstance(value, dict):
                raise click.BadParameter("expected a JSON object", param_hint=spec.flag)
        elif spec.kind == "pairs" and f.name.endswith("storage_options"):
            value = _storage_options(value, spec.flag)
        elif spec.kind == "pairs":
            value = _text_pairs(value, spec.flag)
        out[f.name] = value
    return out


def _options(base: dict[str, Any] | None = None, **overrides: Any) -> RegisterOptions:
    """A :class:`RegisterOptions` from CLI values; a value the options refuse
    is a usage error."""
    from producer.errors import InputError  # noqa: PLC0415 (see the module doc)
    from producer.options import RegisterOptions, flag_spelling  # noqa: PLC0415
    from producer.redact import redact  # noqa: PLC0415

    given = {**(base or {}), **overrides}
    if given.get("group") and "id_template" in given:
        # typed out, even as the default {stem}: the pattern names the items, the template would be ignored
        raise click.UsageError(
            f"--group and --id-template ({given['id_template']!r}) cannot be combined: with --group each "
            "item's id is the pattern's (?P<id>...) group, and the id template would be ignored; leave "
            "--id-template out, or change that group of the pattern"
        )
    try:
        return RegisterOptions(**given)
    except (TypeError, ValueError) as exc:
        text = exc.phrased(flag_spelling) if isinstance(exc, InputError) else str(exc)
        raise click.UsageError(redact(text)) from exc


def _import_pystac_without_urllib3() -> None:
    """Import pystac, in this CLI process, without letting it import urllib3.

    pystac imports urllib3 at import time (http.client, ssl, email: about
    0.1 s, the largest import of a local ``register`` that is not needed) only
    to offer ``RetryStacIO`` and to read ``http(s)`` hrefs with it. The
    producer reads and writes through its own stores and uses pystac only to
    build items, so in the CLI's own process pystac is imported with urllib3
    hidden: it then falls back to ``urllib.request`` for the reads it never
    makes here. urllib3 itself stays importable (botocore loads it for an S3
    catalog). Mutates ``sys.modules``: the library (``import producer``) never
    does this; only the ``stac-producer`` process, which owns its imports."""
    if "pystac" in sys.modules or "urllib3" in sys.modules:
        return
    sys.modules["urllib3"] = None  # type: ignore[assignment]  # `import urllib3` raises ImportError
    try:
        import pystac  # noqa: F401, PLC0415
    finally:
        del sys.modules["urllib3"]


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="stac-producer")
@click.option(
    "--verbose",
    "-v",
    count=True,
    help="Log to stderr: -v one line per product and a summary (with compare-and-swap conflicts), "
    "-vv every storage read and write.",
)
@click.option("--quiet", "-q", is_flag=True, help="Log errors only (default: warnings and errors).")
@click.pass_context
def main(ctx: click.Context, verbose: int, quiet: bool) -> None:
    """Register raster products into a static STAC catalog, and keep it valid."""
    from producer.logs import configure_cli  # noqa: PLC0415 (see the module doc)

    _import_pystac_without_urllib3()
    ctx.call_on_close(configure_cli(verbose, quiet))


@main.command()
@click.argument("paths", nargs=-1, required=True)
@catalog_option
@collection_option
@register_option_flags()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per product.")
@click.option("--collection-title", help="Title of a new collection.")
@click.option("--collection-description", help="Description of a new collection.")
@click.option("--license", "license_", help="SPDX license id of a new collection (default: other).")
@click.option("--keyword", "keywords", multiple=True, help="Keyword of a new collection (repeatable).")
@click.option(
    "--provider",
    "providers",
    multiple=True,
    metavar="NAME[:ROLES[:URL]]",
    help="Provider of a new collection as NAME[:ROLES[:URL]] or a JSON object, as --item-provider takes it, "
    "e.g. 'ESA:producer,licensor:https://esa.int' (repeatable).",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Progress bar on stderr (default: when stderr is a terminal).",
)
@storage_option
def register(
    paths: tuple[str, ...],
    catalog: str,
    collection: str,
    as_json: bool,
    collection_title: str | None,
    collection_description: str | None,
    license_: str | None,
    keywords: tuple[str, ...],
    providers: tuple[str, ...],
    progress: bool | None,
    storage_pairs: tuple[str, ...],
    **fields_given: Any,
) -> None:
    """Register PATHS (files, directories, globs, URLs) into the catalog.

    -o/--storage-option applies to both the data and the catalog; the
    --data-/--catalog-storage-option ones to one of them (and win)."""
    from producer import api  # noqa: PLC0415 (the write path: see the module doc)
    from producer.options import flag_spelling  # noqa: PLC0415
    from producer.redact import redact  # noqa: PLC0415

    given = register_overrides(fields_given)
    meta: dict[str, Any] = dict(given.get("collection_meta") or {})
    for key, flag, value in (
        ("title", "--collection-title", collection_title),
        ("description", "--collection-description", collection_description),
        ("license", "--license", license_),
        ("keywords", "--keyword", list(keywords)),
        ("providers", "--provider", [_provider(p) for p in providers]),
    ):
        if not value:
            continue
        if key in meta and meta[key] != value:
            # one would silently win: the caller meant one of them
            raise click.UsageError(
                redact(
                    f"the new collection's {key!r} is given twice, as {meta[key]!r} in --collection-meta "
                    f"and as {value!r} by {flag}: give it once"
                )
            )
        meta[key] = value
    if meta:
        given["collection_meta"] = meta
    shared = _storage_options(storage_pairs)
    for name in ("data_storage_options", "catalog_storage_options"):
        given[name] = {**shared, **given.get(name, {})} or None
    options = _options(given)
    sources = api.expand_products(paths, options)
    if not sources:
        raise click.UsageError(
            redact(
                _no_products_found(
                    paths, grouped=options.group is not None, storage_options=options.data_storage_options
                )
            )
        )
    show_bar = (sys.stderr.isatty() if progress is None else progress) and len(sources) > 1
    bar = click.progressbar(length=len(sources), label="registering", file=sys.stderr) if show_bar else None

    def tick(done: int, total: int) -> None:
        if bar is not None:
            bar.update(done - bar.pos)

    try:
        results = api.register(
            sources, catalog=catalog, collection=collection, options=options, progress=tick
        )
    finally:
        if bar is not None:
            bar.render_finish()

    dry_run = options.dry_run
    failed = [r for r in results if not r.ok]
    if as_json:
        for r in results:
            click.echo(json.dumps({**r.to_dict(flag_spelling), **({"dry_run": True} if dry_run else {})}))
    else:
        rows = [
            (
                r.id or "-",
                f"{r.action} (link pending)" if r.link_pending else r.action,
                r.href if r.ok else r.error_for(flag_spelling),
            )
            for r in results
        ]
        click.echo(_table(rows, ["id", "action", "item / error"]))
        counts: dict[str, int] = {}
        for r in results:
            counts[r.action] = counts.get(r.action, 0) + 1
        summary = ", ".join(f"{n} {a}" for a, n in sorted(counts.items()))
        pending = sum(1 for r in results if r.ok and r.link_pending)
        if pending:  # --ack durable: written and durable, a leader links them
            summary += f" ({pending} not linked yet: their links are pending, --ack durable)"
        click.echo(f"\n{len(results)} products: {summary}{' (dry run: nothing written)' if dry_run else ''}")
    for r in failed:
        if as_json:
            click.echo(f"error: {r.error_for(flag_spelling)}", err=True)
    sys.exit(1 if failed else 0)


@main.command()
@click.argument("catalog", envvar="STAC_CATALOG")
@click.option("--check-assets", is_flag=True, help="Also check that asset hrefs exist.")
@click.option("--json", "as_json", is_flag=True, help="Print problems as JSON lines.")
@storage_option
def validate(catalog: str, check_assets: bool, as_json: bool, storage_pairs: tuple[str, ...]) -> None:
    """Check the whole CATALOG: schemas (offline), links, orphans, extents."""
    from producer import api  # noqa: PLC0415 (the write path: see the module doc)

    problems = api.validate_catalog(
        catalog, storage_options=_storage_options(storage_pairs), check_assets=check_assets
    )
    problems = [p.phrased(REPAIR_COMMAND) for p in problems]
    errors = [p for p in problems if p.is_error]
    for p in problems:
        click.echo(json.dumps(p.to_dict()) if as_json else f"{'ERROR' if p.is_error else 'warning'} {p}")
    if not as_json:
        click.echo(
            f"{catalog}: {len(errors)} errors, {len(problems) - len(errors)} warnings"
            + (" — valid" if not errors else "")
        )
    sys.exit(1 if errors else 0)


@main.command()
@click.argument("item_id")
@catalog_option
@existing_collection_option
@pgstac_option
@sns_topic_option
@storage_option
@click.option(
    "--product",
    metavar="PATH",
    default=None,
    help="Remove only what describes this product: of a multi-asset item, its asset "
    "(the item goes with its last data asset); else the item, if it describes it.",
)
@click.option(
    "--max-retries",
    type=click.IntRange(min=0),
    default=25,
    show_default=True,
    help="Write retries per parent document when other writers keep changing it.",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print the result as one JSON object (id, href, action, ...)."
)
def remove(
    item_id: str,
    catalog: str,
    collection: str,
    pgstac: str | None,
    sns_topic: str | None,
    storage_pairs: tuple[str, ...],
    product: str | None,
    max_retries: int,
    as_json: bool,
) -> None:
    """Unlink and delete ITEM_ID; recompute the collection extent exactly.
    With --pgstac, delete it from the database too (checked first); with
    --sns-topic, publish the removal there."""
    from producer import api  # noqa: PLC0415 (the write path: see the module doc)
    from producer.errors import ConflictError, StoreError  # noqa: PLC0415
    from producer.options import flag_spelling  # noqa: PLC0415
    from producer.results import RemoveResult  # noqa: PLC0415

    # no catalog at all (a mistyped path) is a usage error, as for search and validate
    store = api.require_catalog(catalog, _storage_options(storage_pairs))
    try:
        result = api.remove(
            item_id,
            catalog=store,
            collection=collection,
            pgstac=pgstac,
            sns_topic=sns_topic,
            product=product,
            max_retries=max_retries,
        )
    except (StoreError, ConflictError) as exc:
        # a storage fault or a compare-and-swap given up, maybe after the item
        # was marked or unlinked: name the item and how to finish its removal
        result = RemoveResult(id=item_id, href=None)
        result.fail(
            f"{item_id}: not removed ({exc}); run this remove again, or reconcile --fix, to finish it", exc
        )
    # no such collection: a usage error, as search --collections says
    if result.action == "absent" and result.reason is not None:
        raise click.UsageError(f"{item_id}: not removed: {result.reason}; check --collection")
    if as_json:
        click.echo(json.dumps(result.to_dict(flag_spelling)))
    if not result.ok:
        click.echo(f"error: {result.error_for(flag_spelling)}", err=True)
        sys.exit(1)
    if result.action == "absent":
        click.echo(f"{item_id}: no such item in collection {collection}", err=True)
        sys.exit(1)
    if as_json:
        pass  # stdout holds the JSON object only
    elif result.action == "updated":  # one asset of a multi-asset item
        click.echo(f"{item_id}: {result.reason} ({result.href})")
        return
    if result.action == "kept" and product is not None:
        click.echo(f"{item_id}: not removed: {result.reason}", err=True)
        sys.exit(1)
    if result.action == "kept":
        click.echo(
            f"{item_id}: not removed: it was registered again while being removed "
            f"({result.href}); run remove again to remove the new version",
            err=True,
        )
        sys.exit(1)
    if not as_json:
        extra = " (extent recomputed)" if result.extent_recomputed else ""
        click.echo(f"removed {item_id} ({result.href}){extra}")


@main.command()
@click.argument("catalog", envvar="STAC_CATALOG")
@click.option(
    "--data",
    "data",
    multiple=True,
    metavar="PREFIX",
    help="Product prefix/folder/glob to compare with the catalog (repeatable); "
    "also checks that asset hrefs exist.",
)
@click.option("--fix", is_flag=True, help="Repair what was found (default: report only).")
@click.option(
    "--dead",
    type=click.Choice(["flag", "remove"]),
    default="flag",
    show_default=True,
    help="Items whose assets are gone: flag (deprecated: true) or remove.",
)
@click.option(
    "--collection",
    help="Collection for products found under --data with no item (only with --data: "
    "reconcile always checks every collection).",
)
@click.option(
    "--check-assets/--no-check-assets",
    default=None,
    help="Check asset hrefs exist (default: on when --data is given).",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the report as one JSON object (found, fixed, failed, remaining, registered).",
)
@register_option_flags()
@storage_option
def reconcile(
    catalog: str,
    data: tuple[str, ...],
    fix: bool,
    dead: Literal["flag", "remove"],
    collection: str | None,
    check_assets: bool | None,
    as_json: bool,
    pgstac: str | None,
    storage_pairs: tuple[str, ...],
    **fields_given: Any,
) -> None:
    """Find (and with --fix repair) orphans, dangling/duplicate links, stale
    extents, items whose assets are gone and products with no item. With
    --pgstac, also compare the database with the catalog (missing, extra
    and differing items; --fix brings it in line). --fix --dry-run writes
    nothing (no repair, no registration) and counts what --fix would fix.

    Exit 0: nothing left to do. Exit 1: problems remain, an asset could
    not be checked (its item is left unchanged), a collection's mirror could
    not be checked or rebuilt, or a missing product could not be
    registered. Exit 2: usage error."""
    from dataclasses import replace  # noqa: PLC0415

    from producer import api  # noqa: PLC0415 (the write path: see the module doc)
    from producer.errors import rephrase  # noqa: PLC0415
    from producer.options import RECONCILE_WITHOUT_DATA, flag_spelling  # noqa: PLC0415
    from producer.redact import redact  # noqa: PLC0415

    empty = [n for n, path in enumerate(data, 1) if not path.strip()]
    if empty:  # an unset shell variable (--data "$DIR"): refused, as a typo in a path is
        raise click.UsageError(
            f"the {ordinal(empty[0])} --data of the {len(data)} given is empty: a products' folder, prefix "
            "or glob was meant there (a variable left unset?); give it, or leave that --data out. "
            "Nothing was checked or written"
        )
    if collection and not data:
        raise click.UsageError(
            "--collection names the collection that products found under --data are registered "
            "into; without --data it limits nothing (reconcile checks, and with --fix repairs, every "
            "collection of the catalog): add --data PREFIX, or leave --collection out"
        )
    given = register_overrides(fields_given)
    ignored = sorted(set(given) - RECONCILE_WITHOUT_DATA) if not data else []
    if ignored:
        from dataclasses import fields  # noqa: PLC0415

        from producer.options import RegisterOptions, option_spec  # noqa: PLC0415

        named = ", ".join(option_spec(f).flag for f in fields(RegisterOptions) if f.name in ignored)
        raise click.UsageError(
            f"{named} only {'applies' if len(ignored) == 1 else 'apply'} with --data: register flags "
            "shape how the products found under --data with no item are registered, and without "
            f"--data nothing is registered (they would be ignored): add --data PREFIX, or leave {named} out"
        )
    options = _options(given)
    report = api.reconcile(
        catalog,
        storage_options=_storage_options(storage_pairs),
        data=list(data) or None,
        fix=fix,
        dead=dead,
        collection=collection,
        check_assets=check_assets,
        options=options,
        max_retries=options.max_retries,  # the repairs' too, as the hint of a give-up says
        pgstac=pgstac,
    )
    # a product that failed to register: its error's hints spelled as flags
    hints_of = {redact(str(r.source)): r.hints for r in report.registered}  # as the findings key it
    if report.dry_run:  # nothing was fixed: what a fix would resolve
        kinds = sorted(set(report.found) | set(report.would_fix))
        rows = [
            (k, report.found.get(k, 0), report.would_fix.get(k, 0), report.failed.get(k, 0)) for k in kinds
        ]
        header = ["finding", "found", "would fix", "would fail"]
    else:
        rows = [(kind, found, fixed, report.failed.get(kind, 0)) for kind, found, fixed in report.rows()]
        header = ["finding", "found", "fixed", "failed"]
    shown = report.remaining if fix else report.problems
    spelled = [
        replace(
            p,
            key=redact(p.key),
            message=redact(
                rephrase(p.phrased(REPAIR_COMMAND).message, hints_of.get(p.key, ()), flag_spelling)
            ),
        )
        for p in shown
    ]
    blocking = [p for p in shown if p.is_error]
    if as_json:
        click.echo(
            json.dumps(
                {
                    "found": report.found,
                    "fixed": report.fixed,
                    "failed": report.failed,
                    "dry_run": report.dry_run,
                    "would_fix": report.would_fix,
                    "remaining": [p.to_dict() for p in spelled],
                    "registered": [r.to_dict(flag_spelling) for r in report.registered],
                }
            )
        )
    else:
        click.echo(_table(rows or [("(nothing)", 0, 0, 0)], header))
        for p in spelled:
            click.echo(f"{'ERROR' if p.is_error else 'warning'} {p}")
    unchecked = sum(1 for p in shown if p.kind == "asset-unchecked")
    not_registered = sum(1 for p in shown if p.kind == "register-failed")
    mirrors_unchecked = sum(1 for p in shown if p.kind == "mirror-unchecked")
    if not as_json:
        click.echo("")
    if unchecked:
        click.echo(
            f"{unchecked} asset(s) could not be checked (see the reasons above): their items "
            "were left unchanged, neither flagged nor removed; make the data reachable "
            "(--storage-option endpoint_url=..., credentials, permissions) and rerun",
            err=True,
        )
    if not_registered:
        click.echo(
            f"{not_registered} product(s) under --data could not be registered (see the errors "
            "above); fix or move them and rerun reconcile --fix",
            err=True,
        )
    if mirrors_unchecked:
        click.echo(
            f"the stac-geoparquet mirror of {mirrors_unchecked} collection(s) could not be checked "
            "(see the reasons above): search may not agree with the catalog; make the catalog's "
            "storage reachable (--storage-option endpoint_url=..., credentials, permissions) and rerun",
            err=True,
        )
    if as_json:
        pass  # stdout holds the JSON object only
    elif report.dry_run:
        would = sum(report.would_fix.values())
        click.echo(
            f"dry run: nothing written; reconcile --fix without --dry-run would fix {would} of "
            f"{sum(report.found.values())} problem(s) found"
        )
    elif fix:
        click.echo(
            f"{catalog}: " + ("valid after repair" if not blocking else f"{len(blocking)} problems left")
        )
    elif any(p.kind != "duplicate-product" for p in report.problems):  # one --fix leaves to the caller
        if report.found.get("missing-product") and not collection:  # --fix --data needs it
            click.echo(
                "nothing written; rerun with --fix --collection COLLECTION to repair "
                "(the collection the products with no item are registered into)"
            )
        else:
            click.echo("nothing written; rerun with --fix to repair")
    sys.exit(1 if blocking else 0)


@main.command("handle-event")
@click.argument("payload", type=click.File("r"), default="-")
@catalog_option
@collection_option
@click.option("--prefix", "prefixes", multiple=True, help="Accept only keys under this prefix (repeatable).")
@click.option(
    "--suffix",
    "suffixes",
    multiple=True,
    help=f"Accept only keys with this ending ('*': every ending; repeatable; default {' '.join(PRODUCT_SUFFIXES)}).",
)
@register_option_flags()
@storage_option
def handle_event(
    payload: TextIO,
    catalog: str,
    collection: str,
    prefixes: tuple[str, ...],
    suffixes: tuple[str, ...],
    storage_pairs: tuple[str, ...],
    **fields_given: Any,
) -> None:
    """Apply an S3 event PAYLOAD (JSON file or - for stdin; direct, SQS, SNS or
    EventBridge shape): created objects are registered, removed ones removed.
    Prints the handler's result as JSON."""
    # lazy, like demo's: fsspec (events) and numpy (demo) would add about
    # 0.4 s to every `stac-producer --help`
    from producer.events import DEFAULT_SUFFIXES, HandlerConfig, handle  # noqa: PLC0415
    from producer.options import flag_spelling  # noqa: PLC0415

    try:
        event = json.load(payload)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise click.UsageError(f"{payload.name}: not JSON ({exc})") from exc
    except RecursionError:
        raise click.UsageError(
            f"{payload.name}: not usable JSON (arrays or objects nested too deeply to decode); "
            "pass the event payload as AWS delivers it"
        ) from None
    config = HandlerConfig(
        catalog=catalog,
        collection=collection,
        prefixes=prefixes,
        suffixes=suffixes or DEFAULT_SUFFIXES,
        options=_options(register_overrides(fields_given)),
        storage_options=_storage_options(storage_pairs) or None,
    )
    result = handle(event, config, spell=flag_spelling)
    click.echo(json.dumps(result, indent=2))
    sys.exit(1 if result.get("failed") else 0)


@main.command()
@click.option(
    "--dir", "workdir", default="demo", show_default=True, help="Folder for the sample data and the catalog."
)
@click.option(
    "--count",
    default=6,
    show_default=True,
    type=click.IntRange(1, 500),
    help="Sample COGs to write and register (six places in turn, five days apart).",
)
def demo(workdir: str, count: int) -> None:
    """Write sample COGs, register them into a local catalog, validate it and
    end with one search of its mirror. A second run finds every product
    unchanged and writes nothing."""
    from producer.demo import run_demo  # noqa: PLC0415 (numpy: see handle_event)

    code = run_demo(workdir, count=count, echo=click.echo, table=_table)
    sys.exit(code)


def _geojson_file(text: str) -> str:
    """``--intersects``'s value when it is no JSON object: the text of the
    file it names (an area of interest is usually a .geojson file)."""
    path = Path(text).expanduser()
    if not path.is_file():
        raise click.UsageError(
            f"--intersects {text!r} is neither GeoJSON text nor a file: give a path to a GeoJSON "
            'file (aoi.geojson) or the geometry as JSON, e.g. \'{"type": "Point", "coordinates": [6.1, 46.2]}\''
        )
    try:
        return path.read_text(encoding="utf-8-sig")  # with or without the BOM Windows tools write
    except (OSError, UnicodeDecodeError) as exc:
        raise click.UsageError(f"--intersects {text!r}: the file does not read as text ({exc})") from None


@main.command()
@click.argument("catalog")
@click.option(
    "--bbox",
    metavar="W,S,E,N",
    help="Items whose footprint meets this box (west > east crosses the antimeridian).",
)
@click.option(
    "--intersects",
    metavar="GEOJSON",
    help="Items whose footprint meets this GeoJSON geometry, Feature or FeatureCollection "
    "(JSON text, or a file holding it, e.g. aoi.geojson; not with --bbox).",
)
@click.option(
    "--datetime", "datetime_", metavar="START/END", help="Instant or range; '..' leaves an end open."
)
@click.option("--collections", metavar="A,B", help="Only these collections (comma-separated).")
@click.option("--ids", metavar="X,Y", help="Only these item ids (comma-separated).")
@click.option(
    "--limit", type=click.IntRange(min=0), help="At most this many features (numberMatched counts all)."
)
@storage_option
def search(
    catalog: str,
    bbox: str | None,
    intersects: str | None,
    datetime_: str | None,
    collections: str | None,
    ids: str | None,
    limit: int | None,
    storage_pairs: tuple[str, ...],
) -> None:
    """Search CATALOG's stac-geoparquet mirror; print a STAC API /search-like
    FeatureCollection as JSON."""
    # lazy: duckdb + pyarrow (the mirror extra) cost every other command their import time
    from producer.errors import InputError, ProducerError  # noqa: PLC0415 (see the module doc)
    from producer.query import parse_intersects  # noqa: PLC0415
    from producer.query import search as run_search  # noqa: PLC0415
    from producer.redact import redact  # noqa: PLC0415

    area: Any = intersects
    if intersects is not None and not intersects.lstrip().startswith("{"):
        area = _geojson_file(intersects)
    try:
        if area is not intersects:  # read from a file: its messages name the file, not its text
            area = parse_intersects(area, shown=f"file {intersects!r}")
        result = run_search(
            catalog,
            bbox=bbox,
            intersects=area,
            datetime=datetime_,
            collections=collections,
            ids=ids,
            limit=limit,
            storage_options=_storage_options(storage_pairs) or None,
        )
    except InputError as exc:
        message = redact(exc.phrased(_spelling))
        for flag in ("bbox", "intersects", "datetime", "collections", "ids", "limit"):
            if message.startswith(f"{flag} "):
                message = f"--{message}"
        message = message.replace("and intersects were", "and --intersects were").replace(
            "give bbox or intersects", "give --bbox or --intersects"
        )
        raise click.UsageError(message) from exc
    except ProducerError as exc:
        raise click.ClickException(redact(exc.phrased(_spelling))) from exc
    click.echo(json.dumps(result, indent=2))


if __name__ == "__main__":  # pragma: no cover
    main()
