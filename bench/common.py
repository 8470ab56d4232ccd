"""Shared pieces of the benchmarks: sample rasters, seeded catalogs, a local S3
server in its own process, store wrappers, timing and markdown output.

Everything the benchmarks write lives under ``<repo>/.bench/`` (gitignored):
``cogs/`` (small real COGs, written once and reused), ``seed/`` (catalogs of
N items written directly, reused while :data:`SEED_VERSION` is unchanged)
and ``work/`` (scratch, emptied at every run).
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `python bench/x.py` puts bench/ first, not the repo
    sys.path.insert(0, str(REPO))

BENCH_DIR = REPO / ".bench"
COG_DIR = BENCH_DIR / "cogs"
SEED_DIR = BENCH_DIR / "seed"
WORK_DIR = BENCH_DIR / "work"
BENCHMARKS_MD = REPO / "BENCHMARKS.md"
PY = sys.executable

#: collection every benchmark registers into
COLLECTION = "ndvi"
#: bump when the seeded documents change, so cached seeds are rewritten
SEED_VERSION = "3"
#: seeded items are spread evenly over these ten years (120 month partitions)
SEED_START = datetime(2015, 1, 1, tzinfo=UTC)
SEED_END = datetime(2024, 12, 31, 23, 0, tzinfo=UTC)
#: COG pool: 64x64 float32, one every 3 days from this date (inside the seed span)
COG_SIZE = 64
COG_START = date(2015, 1, 3)
COG_STEP_DAYS = 3


# --- sample rasters -------------------------------------------------------------


def cog_path(i: int) -> Path:
    day = COG_START + timedelta(days=COG_STEP_DAYS * i)
    return COG_DIR / f"bench_{i:04d}_{day:%Y%m%d}.tif"


def _write_cog(i: int) -> None:
    from producer.demo import write_sample_cog

    path = cog_path(i)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    # UTM 32N, 30 m pixels, each tile at its own place (a 30 x 34 grid of 2 km steps)
    write_sample_cog(
        str(tmp),
        32632,
        400000.0 + (i % 30) * 2000.0,
        5600000.0 - (i // 30) * 2000.0,
        30.0,
        seed=i,
        size=COG_SIZE,
    )
    os.replace(tmp, path)


def ensure_cogs(n: int, log: Callable[[str], None] = print) -> list[str]:
    """Paths of the first ``n`` pool COGs, writing the missing ones (cached in .bench/cogs)."""
    COG_DIR.mkdir(parents=True, exist_ok=True)
    missing = [i for i in range(n) if not cog_path(i).exists()]
    if missing:
        t0 = time.perf_counter()
        for i in missing:
            _write_cog(i)
        log(
            f"  wrote {len(missing)} COGs ({COG_SIZE}x{COG_SIZE}) to {COG_DIR} "
            f"in {time.perf_counter() - t0:.1f} s"
        )
    return [str(cog_path(i)) for i in range(n)]


# --- seeded catalogs ------------------------------------------------------------


def _seed_time(i: int, n: int) -> datetime:
    span = (SEED_END - SEED_START).total_seconds()
    return SEED_START + timedelta(seconds=int(span * i / max(1, n)))


def _seed_origin(i: int) -> tuple[float, float]:
    """A distinct lower-left corner per item (distinct for i < 408,000)."""
    lon = -175.0 + (i % 340) * 1.0 + ((i // 40800) % 10) * 0.05
    lat = -60.0 + ((i // 340) % 120) * 1.0
    return lon, lat


class SeedTemplate:
    """A real item (extracted by the project from a pool COG) turned into a
    text template, so N item documents are produced by string substitution in
    exactly the bytes the project writes (``documents.dumps``)."""

    def __init__(self, partition: str | None) -> None:
        from producer.catalog import documents as docs
        from producer.catalog.layout import Layout
        from producer.extract import ExtractOptions, create_item

        ensure_cogs(1)
        self.layout = Layout(partition)
        item = create_item(str(cog_path(0)), ExtractOptions(collection=COLLECTION))
        doc = item.to_dict(include_self_link=False, transform_hrefs=False)
        when = SEED_START
        key = self.layout.item_key(COLLECTION, "X", when)
        docs.set_item_links(
            doc,
            key,
            self.layout,
            COLLECTION,
            self.layout.chain(COLLECTION, when)[0],
            collection_title=COLLECTION,
        )
        doc["properties"]["created"] = doc["properties"]["updated"] = "2025-01-01T00:00:00Z"
        ring = doc["geometry"]["coordinates"][0]
        west, south = doc["bbox"][0], doc["bbox"][1]
        self.ring = [(x - west, y - south) for x, y in ring]
        self.size = (doc["bbox"][2] - west, doc["bbox"][3] - south)
        doc["id"] = "@@ID@@"
        doc["geometry"] = "@@GEOMETRY@@"
        doc["bbox"] = "@@BBOX@@"
        doc["properties"]["datetime"] = "@@DATETIME@@"
        doc["assets"]["data"]["href"] = "@@HREF@@"
        doc["assets"]["data"]["title"] = "@@ID@@.tif"
        text = docs.dumps(doc).decode()
        self.parts = _split_template(text)

    def item(self, i: int, n: int) -> tuple[str, str, datetime, list[float], bytes]:
        """``(id, key, datetime, bbox, bytes)`` of seeded item ``i`` of ``n``."""
        item_id = f"seed_{i:06d}"
        when = _seed_time(i, n)
        lon, lat = _seed_origin(i)
        bbox = [round(lon, 7), round(lat, 7), round(lon + self.size[0], 7), round(lat + self.size[1], 7)]
        values = {
            "ID": item_id,
            "GEOMETRY": _geometry_text(self.ring, lon, lat),
            "BBOX": _list_text(bbox, 4),
            "DATETIME": json.dumps(when.strftime("%Y-%m-%dT%H:%M:%SZ")),
            "HREF": json.dumps(f"/data/seed/{item_id}.tif"),
        }
        out = "".join(values[p[2:-2]] if p.startswith("@@") else p for p in self.parts)
        return item_id, self.layout.item_key(COLLECTION, item_id, when), when, bbox, out.encode()


def _split_template(text: str) -> list[str]:
    import re

    # placeholders were dumped as JSON strings: "@@NAME@@" -> @@NAME@@ (quotes dropped),
    # except inside the asset title where the id is part of a longer string
    text = re.sub(r'"@@(GEOMETRY|BBOX|DATETIME|HREF)@@"', r"@@\1@@", text)
    return [p for p in re.split(r"(@@[A-Z]+@@)", text) if p]


def _list_text(values: Sequence[float], indent: int) -> str:
    pad = " " * (indent + 2)
    return "[\n" + ",\n".join(f"{pad}{v!r}" for v in values) + "\n" + " " * indent + "]"


def _geometry_text(ring: Sequence[tuple[float, float]], lon: float, lat: float) -> str:
    """The polygon as ``json.dumps(indent=2)`` would lay it out at depth 1."""
    p6, p8, p10 = " " * 6, " " * 8, " " * 10
    points = ",\n".join(
        f"{p8}[\n{p10}{round(lon + dx, 7)!r},\n{p10}{round(lat + dy, 7)!r}\n{p8}]" for dx, dy in ring
    )
    return (
        '{\n    "type": "Polygon",\n    "coordinates": [\n'
        + p6
        + "[\n"
        + points
        + "\n"
        + p6
        + "]\n    ]\n  }"
    )


def seed_documents(partition: str | None, n: int) -> Iterator[tuple[str, bytes]]:
    """``(key, bytes)`` of a valid catalog holding ``n`` items, in the project's
    layout: items first, then partition catalogs, collection, root (so a
    reader never meets a link to a missing document while it is written).

    Links are exactly those :meth:`Committer.link_items` writes (relative
    hrefs, same titles, same order); the collection extent is the exact union
    of the items (``documents.exact_extent``), so ``validate_catalog`` finds
    no problem and ``reconcile`` no stale extent.
    """
    from producer.catalog import documents as docs
    from producer.catalog.layout import Layout, relative_href

    layout = Layout(partition)
    coll_key = layout.collection_key(COLLECTION)
    by_parent: dict[str, list[dict]] = {}
    child_of: dict[str, str] = {}
    extent_items: list[dict] = []
    if n:
        tmpl = SeedTemplate(partition)
        for i in range(n):
            item_id, key, when, bbox, data = tmpl.item(i, n)
            yield key, data
            extent_items.append(
                {"bbox": bbox, "properties": {"datetime": when.strftime("%Y-%m-%dT%H:%M:%SZ")}}
            )
            chain = layout.chain(COLLECTION, when)
            by_parent.setdefault(chain[0], []).append(
                {"rel": "item", "href": relative_href(chain[0], key), "type": docs.GEOJSON, "title": item_id}
            )
            for child, up in zip(chain[:-2], chain[1:-1]):
                child_of[child] = up
    for pkey in sorted(child_of, key=lambda k: (-k.count("/"), k)):
        up = child_of[pkey]
        label = pkey[len(COLLECTION) + 1 : -len("/catalog.json")]
        doc = docs.new_partition(pkey, up, layout, COLLECTION, label, COLLECTION)
        doc["links"].extend(by_parent.pop(pkey, []))
        yield pkey, docs.dumps(doc)
        by_parent.setdefault(up, []).append(
            {
                "rel": "child",
                "href": relative_href(up, pkey),
                "type": docs.JSON,
                "title": f"{COLLECTION} {label}",
            }
        )
    coll = docs.new_collection(COLLECTION, None, layout)
    coll["links"].extend(by_parent.pop(coll_key, []))
    if n:
        coll["extent"] = docs.exact_extent(extent_items)
    yield coll_key, docs.dumps(coll)
    root = docs.new_root(None)
    root["links"].append(
        {
            "rel": "child",
            "href": relative_href(layout.root_key, coll_key),
            "type": docs.JSON,
            "title": COLLECTION,
        }
    )
    yield layout.root_key, docs.dumps(root)


def layout_name(partition: str | None) -> str:
    return "default" if partition is None else partition.replace("/", "-")


def seed_local(partition: str | None, n: int, log: Callable[[str], None] = print) -> Path:
    """A cached seeded catalog directory for (layout, n); rewritten if missing,
    of another :data:`SEED_VERSION`, or left dirty by an interrupted run."""
    root = SEED_DIR / f"{layout_name(partition)}-{n}"
    ok = root.with_name(root.name + ".ok")
    dirty = root.with_name(root.name + ".dirty")
    if ok.exists() and ok.read_text() == SEED_VERSION and not dirty.exists() and root.is_dir():
        return root
    t0 = time.perf_counter()
    with contextlib.suppress(FileNotFoundError):
        ok.unlink()
    if root.exists():
        shutil.rmtree(root)
    made: set[str] = set()
    for key, data in seed_documents(partition, n):
        path = root / key
        folder = str(path.parent)
        if folder not in made:
            os.makedirs(folder, exist_ok=True)
            made.add(folder)
        with open(path, "wb") as f:
            f.write(data)
    with contextlib.suppress(FileNotFoundError):
        dirty.unlink()
    ok.write_text(SEED_VERSION)
    log(
        f"  seeded {n:,} items ({layout_name(partition)} layout) in {root} "
        f"in {time.perf_counter() - t0:.1f} s"
    )
    return root


@contextlib.contextmanager
def mark_dirty(root: Path) -> Iterator[None]:
    """Flag a cached seed as possibly modified until the block restores it."""
    dirty = root.with_name(root.name + ".dirty")
    dirty.write_text("in use")
    yield
    dirty.unlink()


def check_seed_with_pystac(root: str, sample: int = 20, full: bool = False) -> dict:
    """Read the seeded catalog with pystac: root, collection, and either every
    item (``full``) or ``sample`` items spread over the links. Raises on failure."""
    import pystac

    cat = pystac.Catalog.from_file(os.path.join(root, "catalog.json"))
    coll = cat.get_child(COLLECTION)
    assert isinstance(coll, pystac.Collection), coll
    if full:
        items = list(coll.get_items(recursive=True))
        return {"items_read": len(items)}
    # walk the links by hand (pystac resolves them) for a sample of items
    seen = 0
    stack: list[Any] = [coll]
    while stack and seen < sample:
        node = stack.pop()
        links = node.get_links("item")
        step = max(1, len(links) // max(1, sample))
        for link in links[::step][: sample - seen]:
            obj = link.resolve_stac_object(root=cat).target
            assert isinstance(obj, pystac.Item) and obj.collection_id == COLLECTION
            seen += 1
        stack.extend(node.get_children())
    return {"items_read": seen}


# --- store wrappers -------------------------------------------------------------


class UndoStore:
    """A store wrapper that remembers what each key held before its first
    write, so a benchmark can put a cached seeded catalog back as it was."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.url = inner.url
        self.concurrent_safe = inner.concurrent_safe
        self.before: dict[str, bytes | None] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def put(self, key: str, data: bytes, **kwargs: Any) -> str:
        from producer.errors import NotFound

        if key not in self.before:
            try:
                self.before[key] = self.inner.get(key)[0]
            except NotFound:
                self.before[key] = None
        return self.inner.put(key, data, **kwargs)

    def undo(self) -> None:
        from producer.errors import NotFound

        # children before parents is not needed: nobody reads while we restore
        for key, data in self.before.items():
            if data is None:
                with contextlib.suppress(NotFound):
                    self.inner.delete(key)
            else:
                self.inner.put(key, data)
        self.before.clear()


class ConflictCountingStore:
    """Counts ``PreconditionFailed`` raised by conditional puts: each one is a
    compare-and-swap the Committer lost and retried (``Committer.conflicts``,
    which ``producer.register`` does not expose)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.url = inner.url
        self.concurrent_safe = inner.concurrent_safe
        self.conflicts = 0
        self.by_key: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def put(self, key: str, data: bytes, **kwargs: Any) -> str:
        from producer.errors import PreconditionFailed

        try:
            return self.inner.put(key, data, **kwargs)
        except PreconditionFailed:
            self.conflicts += 1
            self.by_key[key] = self.by_key.get(key, 0) + 1
            raise

    def delete_many(self, keys: list[str]) -> dict[str, str]:
        """The inner store's batch delete (S3 DeleteObjects), else one
        delete per key (the Committer looks this method up on the class)."""
        from producer.errors import NotFound

        many = getattr(type(self.inner), "delete_many", None)
        if callable(many):
            return dict(self.inner.delete_many(keys))
        for key in keys:
            with contextlib.suppress(NotFound):
                self.inner.delete(key)
        return {}


# --- local S3 in its own process ---------------------------------------------------


class S3Process:
    """The serialized moto server of ``tests/s3server.py``, run in a child
    process (its own interpreter and GIL, like a remote S3). ``seed()`` puts
    documents with boto3 PutObject from a thread pool."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [PY, str(Path(__file__).resolve()), "_s3server"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=str(REPO),
        )
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line:
            raise RuntimeError("the moto S3 server process did not start")
        info = json.loads(line)
        self.endpoint_url: str = info["endpoint_url"]
        self.bucket: str = info["bucket"]
        self.storage_options: dict = info["storage_options"]
        self._client = None

    def url(self, prefix: str) -> str:
        return f"s3://{self.bucket}/{prefix}"

    def client(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            self._client = boto3.client(
                "s3",
                endpoint_url=self.endpoint_url,
                region_name="us-east-1",
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
                config=Config(max_pool_connections=16, retries={"max_attempts": 5}),
            )
        return self._client

    def seed(self, prefix: str, docs: Iterable[tuple[str, bytes]], threads: int = 8) -> int:
        client = self.client()
        count = 0
        with ThreadPoolExecutor(threads) as pool:
            futures = []
            for key, data in docs:
                futures.append(
                    pool.submit(client.put_object, Bucket=self.bucket, Key=f"{prefix}/{key}", Body=data)
                )
                count += 1
                if len(futures) >= 2000:
                    for f in futures:
                        f.result()
                    futures = []
            for f in futures:
                f.result()
        return count

    def command(self, **cmd: Any) -> dict:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        out = json.loads(self.proc.stdout.readline())
        if "error" in out:
            raise RuntimeError(f"S3 server command {cmd['op']} failed: {out['error']}")
        return out

    def seed_direct(self, prefix: str, partition: str | None, n: int) -> dict:
        """Seed inside the server process (see :func:`_s3_command`)."""
        return self.command(op="seed", prefix=prefix, partition=partition, n=n)

    def drop(self, prefix: str) -> dict:
        return self.command(op="drop", prefix=prefix)

    def stats(self) -> dict:
        """Server-process memory (VmRSS, VmHWM) in MB."""
        return _proc_mem(self.proc.pid)

    def cpu_seconds(self) -> float:
        """User + system CPU time the server process has used so far."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        if self.proc.poll() is None:
            if self.proc.stdin:
                self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> S3Process:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _serve_s3() -> None:
    """Child process: run the server, answer one JSON command per stdin line."""
    from tests.s3server import moto_s3

    with moto_s3("bench") as srv:
        print(
            json.dumps(
                {
                    "endpoint_url": srv.endpoint_url,
                    "bucket": srv.bucket,
                    "storage_options": srv.storage_options,
                }
            ),
            flush=True,
        )
        for line in sys.stdin:  # until the parent closes our stdin
            cmd = json.loads(line)
            try:
                out = _s3_command(srv.bucket, cmd)
            except Exception as exc:  # report, keep serving
                out = {"error": f"{type(exc).__name__}: {exc}"}
            print(json.dumps(out), flush=True)


def _s3_backend() -> Any:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    return s3_backends[DEFAULT_ACCOUNT_ID]["aws"]


def _s3_command(bucket: str, cmd: dict) -> dict:
    """``seed``: write a seeded catalog straight into moto's in-process backend
    (the same call its PutObject handler ends in: same objects and ETags, no
    HTTP round trip); ``drop``: delete every object under a prefix."""
    backend = _s3_backend()
    t0 = time.perf_counter()
    if cmd["op"] == "seed":
        n = 0
        with _serve_lock():
            for key, data in seed_documents(cmd["partition"], cmd["n"]):
                backend.put_object(bucket, f"{cmd['prefix']}/{key}", data)
                n += 1
        return {"count": n, "seconds": time.perf_counter() - t0, **_proc_mem(os.getpid())}
    if cmd["op"] == "drop":
        keys = [k for k in list(backend.get_bucket(bucket).keys.keys()) if k.startswith(cmd["prefix"] + "/")]
        with _serve_lock():
            for k in keys:
                backend.delete_object(bucket, k)
        return {"count": len(keys), "seconds": time.perf_counter() - t0, **_proc_mem(os.getpid())}
    if cmd["op"] == "mem":
        return _proc_mem(os.getpid())
    raise ValueError(f"unknown command {cmd!r}")


@contextlib.contextmanager
def _serve_lock() -> Iterator[None]:
    yield  # commands run while no benchmark request is in flight


# --- measuring --------------------------------------------------------------------


def rss_mb() -> float:
    """Current resident set size of this process, MB."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (Linux >= 4.0: write 5 to clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def hwm_mb() -> float:
    """Peak RSS since the last :func:`reset_peak_rss` (VmHWM), MB."""
    return _proc_mem(os.getpid())["hwm"]


def _proc_mem(pid: int) -> dict:
    out = {"rss": 0.0, "hwm": 0.0}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    out["rss"] = int(line.split()[1]) / 1024
                elif line.startswith("VmHWM:"):
                    out["hwm"] = int(line.split()[1]) / 1024
    except OSError:
        pass
    return out


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def run_json(args: Sequence[str], timeout: float | None = None) -> dict:
    """Run ``python <args>`` in a fresh process; its last stdout line is JSON."""
    proc = subprocess.run([PY, *args], capture_output=True, text=True, cwd=str(REPO), timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:2])} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    return json.loads(lines[-1])


class Ticker:
    """Prints a heartbeat every ``every`` seconds while a long step runs."""

    def __init__(self, label: str, every: float = 30.0) -> None:
        self.label, self.every = label, every
        self._stop = threading.Event()
        self._t0 = time.perf_counter()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            print(f"    ... {self.label}: {time.perf_counter() - self._t0:.0f} s", flush=True)

    def __enter__(self) -> Ticker:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()


# --- output -------------------------------------------------------------------------


def fmt_s(seconds: float | None) -> str:
    if seconds is None or seconds != seconds:
        return "–"
    if seconds < 0.1:
        return f"{seconds * 1000:.1f} ms"
    if seconds < 10:
        return f"{seconds:.2f} s"
    return f"{seconds:.1f} s"


def fmt_n(n: float) -> str:
    return f"{n:,.0f}"


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = [
        "| " + " | ".join(headers) + " |",
        "| " + " | ".join("---" if i == 0 else "---:" for i in range(len(headers))) + " |",
    ]
    for row in rows:
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    return "\n".join(lines)


def machine_note() -> str:
    import platform

    try:
        with open("/proc/cpuinfo") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "?")
    except OSError:
        model = "?"
    return (
        f"{os.cpu_count()} cores ({model}), Linux {platform.release()}, "
        f"Python {platform.python_version()}; run {datetime.now():%Y-%m-%d %H:%M}"
    )


def write_section(name: str, body: str, path: Path = BENCHMARKS_MD) -> None:
    """Replace the text between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->``
    in ``path`` (appending the pair at the end if missing)."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    text = path.read_text() if path.exists() else ""
    block = f"{start}\n{body.rstrip()}\n{end}"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        _, tail = rest.split(end, 1)
        text = head + block + tail
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)


def fresh_work_dir(name: str) -> Path:
    path = WORK_DIR / name
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "_s3server":
    _serve_s3()
