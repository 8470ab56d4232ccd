"""Upsert cost vs catalog size, batch throughput and reconcile time.

    .venv/bin/python bench/upsert.py --quick        # smoke test, < 1 minute, prints only
    .venv/bin/python bench/upsert.py                # full run, writes BENCHMARKS.md sections

Sections (``--sections a,b``): ``local`` (this project vs the pystac
tutorial way, default layout), ``partitioned`` (year/month layout), ``s3``
(local moto server, both layouts), ``throughput`` (1,000 COGs in one call),
``reconcile`` (10,000-item catalog with orphans and a stale extent).

Every measurement runs in a fresh Python process (``_cell``), warmed up on a
scratch catalog first, so timings exclude imports and schema loading and the
memory figure is that process's peak RSS above its baseline during the
measured upserts (VmHWM reset through /proc/self/clear_refs).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common as c

SECTIONS = ("local", "partitioned", "s3", "throughput", "reconcile")

FULL = {
    "local_n": [0, 1000, 10000, 100000],
    "ours_repeats": 5,
    "n0_repeats": 7,
    "tutorial_repeats": {1000: 3, 10000: 1},
    "tutorial_max_n": 10000,
    "partitioned_n": [0, 1000, 10000, 100000],
    "s3_n": [0, 1000, 10000, 100000],
    "s3_repeats": 5,
    "throughput_n": 1000,
    "reconcile_n": 10000,
    "reconcile_orphans": 10,
}
#: CI smoke (bench/quick.sh): every section once, small N (S3: N = 0 only); N = 0 keeps 7
#: repeats on every side (ours, ours with durability "os", tutorial): the n0 comparison
#: (point 5) is read from it
QUICK = {
    "local_n": [0, 100],
    "ours_repeats": 3,
    "n0_repeats": 7,
    "tutorial_repeats": {100: 1},
    "tutorial_max_n": 100,
    "partitioned_n": [0, 100],
    "s3_n": [0],
    "s3_repeats": 1,
    "throughput_n": 10,
    "reconcile_n": 50,
    "reconcile_orphans": 2,
}

#: pool COGs used by each kind of measurement (distinct files, dates inside the seed span)
WARM_COG = 999
OURS_COGS = range(900, 930)
TUTORIAL_COGS = range(930, 960)
POOL = 1000


def log(msg: str) -> None:
    print(msg, flush=True)


# =====================================================================================
# measurements, each run in a fresh process by `python bench/upsert.py _cell <json>`
# =====================================================================================


def _warm_ours(spec: dict) -> None:
    import producer

    scratch = c.fresh_work_dir(f"warm-{os.getpid()}")
    producer.register(
        [str(c.cog_path(WARM_COG))],
        catalog=str(scratch),
        collection=c.COLLECTION,
        partition=spec.get("partition"),
    )
    if spec.get("storage_options"):  # open the connection pool too
        from producer.errors import NotFound
        from producer.store import open_store

        store = open_store(spec["catalog"], spec["storage_options"])
        try:
            store.get("catalog.json")
        except NotFound:
            pass
    shutil.rmtree(scratch)


def _keys_for(cog: str, partition: str | None) -> list[str]:
    """Documents one registration of ``cog`` may write (to snapshot them untimed)."""
    from producer.catalog.layout import Layout
    from producer.commit import item_start
    from producer.extract import ExtractOptions, create_item

    layout = Layout(partition)
    doc = create_item(cog, ExtractOptions(collection=c.COLLECTION)).to_dict(include_self_link=False)
    when = item_start(doc) if partition else None
    return [layout.item_key(c.COLLECTION, doc["id"], when), *layout.chain(c.COLLECTION, when)]


class _ByteCounter:
    """Counts bytes through get/put just above the real store."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.url, self.concurrent_safe = inner, inner.url, inner.concurrent_safe
        self.read = self.written = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def get(self, key: str) -> tuple[bytes, str]:
        data, version = self.inner.get(key)
        self.read += len(data)
        return data, version

    def put(self, key: str, data: bytes, **kw: Any) -> str:
        self.written += len(data)
        return self.inner.put(key, data, **kw)


def _ours_once(spec: dict, cog: str, durability: str = "fsync") -> tuple[float, tuple, tuple, float]:
    """One timed upsert of ``cog`` into ``spec["catalog"]``, undone afterwards
    (untimed): ``(seconds, (gets, puts, other requests), (bytes read,
    written), peak RSS growth in MB)``."""
    import producer
    from producer.errors import NotFound
    from producer.store import open_store
    from producer.store.counting import CountingStore

    real = open_store(spec["catalog"], spec.get("storage_options"))
    undo = c.UndoStore(real)
    for key in _keys_for(cog, spec.get("partition")):  # snapshot before timing
        try:
            undo.before[key] = real.get(key)[0]
        except NotFound:
            undo.before[key] = None
    nbytes = _ByteCounter(undo)
    counting = CountingStore(nbytes)
    base = c.rss_mb()
    c.reset_peak_rss()
    t0 = time.perf_counter()
    (res,) = producer.register(
        [cog],
        catalog=counting,
        collection=c.COLLECTION,
        partition=spec.get("partition"),
        durability=durability,
    )
    seconds = time.perf_counter() - t0
    mem = c.hwm_mb() - base
    if res.action != "created":
        raise RuntimeError(f"upsert of {cog} gave {res.action}: {res.error}")
    tot = counting.totals()
    undo.undo()
    return (
        seconds,
        (tot["get"], tot["put"], tot["list"] + tot["exists"] + tot["delete"]),
        (nbytes.read, nbytes.written),
        mem,
    )


def _summary(runs: list[tuple[float, tuple, tuple, float]]) -> dict:
    times = [r[0] for r in runs]
    return {
        "times": times,
        "median": c.median(times),
        "counts": [r[1] for r in runs],
        "bytes": [r[2] for r in runs],
        "mem_mb": max(r[3] for r in runs),
    }


def cell_ours(spec: dict) -> dict:
    """Register one more COG, ``repeats`` times, each into the same N-item
    catalog (the previous upsert is undone between repeats, untimed)."""
    _warm_ours(spec)
    runs = [_ours_once(spec, cog, spec.get("durability", "fsync")) for cog in spec["cogs"][: spec["repeats"]]]
    return {**_summary(runs), "rss_base_mb": c.rss_mb()}


def _tutorial(root: str, cog: str) -> None:
    """The pystac tutorial way of adding one item to a static catalog."""
    import pystac

    from producer.extract import ExtractOptions, create_item

    catalog = pystac.Catalog.from_file(os.path.join(root, "catalog.json"))
    collection = catalog.get_child(c.COLLECTION)
    item = create_item(cog, ExtractOptions(collection=c.COLLECTION))  # same extraction as ours
    collection.add_item(item)
    collection.update_extent_from_items()
    catalog.normalize_and_save(root, pystac.CatalogType.SELF_CONTAINED)


def _counting_io() -> Any:
    """pystac's default StacIO, counting documents and bytes (set as the default)."""
    import pystac
    from pystac.stac_io import DefaultStacIO

    class CountingIO(DefaultStacIO):
        reads = writes = read_bytes = written_bytes = 0

        def read_text(self, source: Any, *a: Any, **kw: Any) -> str:
            txt = super().read_text(source, *a, **kw)
            CountingIO.reads += 1
            CountingIO.read_bytes += len(txt)
            return txt

        def write_text(self, dest: Any, txt: str, *a: Any, **kw: Any) -> None:
            CountingIO.writes += 1
            CountingIO.written_bytes += len(txt)
            super().write_text(dest, txt, *a, **kw)

    pystac.StacIO.set_default(CountingIO)
    return CountingIO


def _warm_tutorial(seed: Path) -> None:
    """One untimed tutorial upsert into a copy of ``seed`` (a small catalog)."""
    warm = c.fresh_work_dir(f"warm-{os.getpid()}")
    shutil.rmtree(warm)
    shutil.copytree(seed, warm)
    _tutorial(str(warm), str(c.cog_path(WARM_COG)))
    shutil.rmtree(warm)


def _tutorial_once(io: Any, catalog: str, cog: str) -> tuple[float, tuple, tuple, float]:
    """One timed tutorial upsert into a fresh copy of ``catalog`` (copy untimed)."""
    work = c.WORK_DIR / f"tutorial-{os.getpid()}"
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(catalog, work)
    io.reads = io.writes = io.read_bytes = io.written_bytes = 0
    base = c.rss_mb()
    c.reset_peak_rss()
    t0 = time.perf_counter()
    _tutorial(str(work), cog)
    seconds = time.perf_counter() - t0
    return seconds, (io.reads, io.writes, 0), (io.read_bytes, io.written_bytes), c.hwm_mb() - base


def cell_tutorial(spec: dict) -> dict:
    """pystac: read catalog, add item, update extent, normalize_and_save. Each
    repeat starts from a fresh copy of the seeded catalog (copy untimed)."""
    io = _counting_io()
    _warm_tutorial(c.seed_local(None, 0))
    runs = [_tutorial_once(io, spec["catalog"], cog) for cog in spec["cogs"][: spec["repeats"]]]
    work = c.WORK_DIR / f"tutorial-{os.getpid()}"
    if spec.get("check"):  # pystac wrote a catalog the project still reads as valid
        import producer

        errors = [str(p) for p in producer.validate_catalog(str(work)) if p.is_error]
        if errors:
            raise RuntimeError(f"catalog after the tutorial upsert is invalid: {errors[:3]}")
    shutil.rmtree(work)
    return _summary(runs)


def cell_side_by_side(spec: dict) -> dict:
    """ours, ours with durability "os" and the tutorial, interleaved in one
    process (the order rotates each repeat), so a change of machine load
    hits the three alike: ``{"ours": ..., "ours_os": ..., "tutorial": ...}``."""
    io = _counting_io()
    _warm_ours(spec)
    _warm_tutorial(Path(spec["catalog"]))  # N = 0 (the seed in use: not through seed_local)
    runs: dict[str, list] = {"ours": [], "ours_os": [], "tutorial": []}
    kinds = list(runs)
    for k in range(spec["repeats"]):
        for kind in kinds[k % 3 :] + kinds[: k % 3]:
            if kind == "tutorial":
                runs[kind].append(_tutorial_once(io, spec["catalog"], spec["tutorial_cogs"][k]))
            else:
                durability = "os" if kind == "ours_os" else "fsync"
                runs[kind].append(_ours_once(spec, spec["cogs"][k], durability))
    work = c.WORK_DIR / f"tutorial-{os.getpid()}"
    import producer

    errors = [str(p) for p in producer.validate_catalog(str(work)) if p.is_error]
    if errors:  # pystac wrote a catalog the project still reads as valid
        raise RuntimeError(f"catalog after the tutorial upsert is invalid: {errors[:3]}")
    shutil.rmtree(work)
    return {kind: _summary(r) for kind, r in runs.items()}


def cell_throughput(spec: dict) -> dict:
    """One register() call with ``n`` distinct COGs into an empty catalog."""
    import producer
    from producer.store import open_store

    _warm_ours(spec)
    store = c.ConflictCountingStore(open_store(spec["catalog"], spec.get("storage_options")))
    base = c.rss_mb()
    c.reset_peak_rss()
    t0 = time.perf_counter()
    results = producer.register(spec["cogs"], catalog=store, collection=c.COLLECTION)
    dt = time.perf_counter() - t0
    mem = c.hwm_mb() - base
    bad = [r for r in results if r.action != "created"]
    if bad:
        raise RuntimeError(f"{len(bad)} products not created, e.g. {bad[0]}")
    problems = [
        str(p)
        for p in producer.validate_catalog(spec["catalog"], storage_options=spec.get("storage_options"))
        if p.is_error
    ]
    return {
        "seconds": dt,
        "n": len(results),
        "items_per_s": len(results) / dt,
        "mem_mb": mem,
        "errors": problems[:5],
    }


def cell_reconcile(spec: dict) -> dict:
    """reconcile() without and with fix on a seeded catalog + orphans + stale extent."""
    import producer
    from producer.catalog import documents as docs

    root = Path(spec["catalog"])
    n, orphans = spec["n"], spec["orphans"]
    # orphans: item documents in the layout, linked by nothing
    tmpl = c.SeedTemplate(None)
    for k in range(orphans):
        item_id, key, _, _, data = tmpl.item(n + k, n)
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    # stale extent: larger than the union of the items
    coll_path = root / c.COLLECTION / "collection.json"
    coll = json.loads(coll_path.read_bytes())
    bbox = coll["extent"]["spatial"]["bbox"][0]
    coll["extent"]["spatial"]["bbox"][0] = [bbox[0] - 2.0, bbox[1] - 2.0, bbox[2], bbox[3]]
    coll_path.write_bytes(docs.dumps(coll))

    out: dict[str, Any] = {"n": n, "orphans": orphans}
    base = c.rss_mb()
    c.reset_peak_rss()
    t0 = time.perf_counter()
    report = producer.reconcile(str(root))
    out["check_s"] = time.perf_counter() - t0
    out["found"] = report.found
    out["check_mem_mb"] = c.hwm_mb() - base
    c.reset_peak_rss()
    t0 = time.perf_counter()
    report = producer.reconcile(str(root), fix=True)
    out["fix_s"] = time.perf_counter() - t0
    out["fix_mem_mb"] = c.hwm_mb() - base
    out["fixed"] = report.fixed
    out["remaining"] = [str(p) for p in report.remaining][:5]
    coll = json.loads(coll_path.read_bytes())
    out["linked"] = sum(1 for link in coll["links"] if link["rel"] == "item")
    return out


CELLS = {
    "ours": cell_ours,
    "side_by_side": cell_side_by_side,
    "tutorial": cell_tutorial,
    "throughput": cell_throughput,
    "reconcile": cell_reconcile,
}


def run_cell(spec: dict, timeout: float = 1800) -> dict:
    return c.run_json([str(Path(__file__).resolve()), "_cell", json.dumps(spec)], timeout=timeout)


# =====================================================================================
# sections (parent process)
# =====================================================================================


def _ours_spec(catalog: str, partition: str | None, repeats: int, **extra: Any) -> dict:
    return {
        "kind": "ours",
        "catalog": catalog,
        "partition": partition,
        "repeats": repeats,
        "cogs": [str(c.cog_path(i)) for i in OURS_COGS],
        **extra,
    }


def _io_text(counts: list, sizes: list) -> tuple[str, str]:
    g, p, other = counts[-1]
    same = all(tuple(x) == tuple(counts[-1]) for x in counts)
    io = f"{g} / {p}" + ("" if not other else f" (+{other} list)") + ("" if same else " (varies)")
    br, bw = sizes[-1]
    return io, f"{_kb(br)} / {_kb(bw)}"


def _kb(n: float) -> str:
    if n >= 2**20:
        return f"{n / 2**20:.1f} MB"
    return f"{n / 1024:.0f} KB"


def section_local(cfg: dict, results: dict) -> str:
    log("\n## upsert vs N, local filesystem, default layout")
    rows = []
    raw = results.setdefault("local", {})
    for n in cfg["local_n"]:
        seed = c.seed_local(None, n, log)
        if n <= 1000:  # the seeded catalog reads fine with pystac, every item
            log(f"  pystac read of the seeded catalog: {c.check_seed_with_pystac(str(seed), full=True)}")
        else:
            log(f"  pystac read of the seeded catalog (sample): {c.check_seed_with_pystac(str(seed))}")
        tut = None
        with c.mark_dirty(seed):
            if n == 0:  # the three interleaved in one process: ratios under the same load
                both = run_cell(
                    _ours_spec(
                        str(seed),
                        None,
                        cfg["n0_repeats"],
                        kind="side_by_side",
                        tutorial_cogs=[str(c.cog_path(i)) for i in TUTORIAL_COGS],
                    )
                )
                ours, ours_os, tut = both["ours"], both["ours_os"], both["tutorial"]
            else:
                ours = run_cell(_ours_spec(str(seed), None, cfg["ours_repeats"]))
                # the same with durability "os" (no fsync), in the same sitting
                ours_os = run_cell(_ours_spec(str(seed), None, cfg["ours_repeats"], durability="os"))
        for label, cell in (("ours    ", ours), ("ours(os)", ours_os)):
            log(
                f"  N={n:>7,}  {label}  median {c.fmt_s(cell['median'])}  "
                f"runs {[round(t, 4) for t in cell['times']]}  get/put {cell['counts'][-1][:2]}  "
                f"mem +{cell['mem_mb']:.1f} MB  load {_load()}"
            )
        if tut is None and n <= cfg["tutorial_max_n"]:
            reps = cfg["tutorial_repeats"].get(n, 1)
            with c.Ticker(f"tutorial N={n:,}"):
                tut = run_cell(
                    {
                        "kind": "tutorial",
                        "catalog": str(seed),
                        "repeats": reps,
                        "cogs": [str(c.cog_path(i)) for i in TUTORIAL_COGS],
                    }
                )
        if tut is not None:
            log(
                f"  N={n:>7,}  tutorial  median {c.fmt_s(tut['median'])}  "
                f"runs {[round(t, 4) for t in tut['times']]}  read/write {tut['counts'][-1][:2]}  "
                f"mem +{tut['mem_mb']:.1f} MB  load {_load()}"
            )
        raw[n] = {"ours": ours, "ours_os": ours_os, "tutorial": tut}
        io, nbytes = _io_text(ours["counts"], ours["bytes"])
        if tut:
            tio, tbytes = _io_text(tut["counts"], tut["bytes"])
            ratio = f"**{fmt_ratio(tut['median'] / ours['median'])}**"
            ratio_os = f"**{fmt_ratio(tut['median'] / ours_os['median'])}**"
            trow = [
                f"{c.fmt_s(tut['median'])} ({len(tut['times'])})",
                ratio,
                ratio_os,
                tio,
                f"{tut['mem_mb']:.1f} MB",
            ]
        else:
            trow = ["not run: O(N), ~N × 2 ms", "–", "–", f"≈ {n + 2:,} / {n + 3:,}", "–"]
        rows.append(
            [
                fmt_int(n),
                f"{c.fmt_s(ours['median'])} ({len(ours['times'])})",
                f"{c.fmt_s(ours_os['median'])} ({len(ours_os['times'])})",
                *trow[:3],
                io,
                nbytes,
                trow[3],
                f"{ours['mem_mb']:.1f} MB",
                trow[4],
            ]
        )
    return c.table(
        [
            "N items",
            "ours: median (runs)",
            "ours, durability os: median (runs)",
            "tutorial: median (runs)",
            "tutorial / ours",
            "tutorial / ours (os)",
            "ours: docs read / written",
            "ours: bytes read / written",
            "tutorial: docs read / written",
            "ours: peak RSS +",
            "tutorial: peak RSS +",
        ],
        rows,
    )


def _load() -> str:
    """The 1-minute load average, noted beside each figure."""
    return Path("/proc/loadavg").read_text().split()[0]


def fmt_ratio(x: float) -> str:
    if x >= 10:
        return f"{x:,.0f}×"
    return f"{x:.1f}×" if x >= 1 else f"{x:.2f}×"


def fmt_int(n: int) -> str:
    return f"{n:,}"


def _scaling_table(raw: dict, ns: list[int]) -> str:
    base = raw[ns[0]]["median"]
    rows = []
    for n in ns:
        r = raw[n]
        io, nbytes = _io_text(r["counts"], r["bytes"])
        rows.append(
            [
                fmt_int(n),
                f"{c.fmt_s(r['median'])} ({len(r['times'])})",
                f"{r['median'] / base:.2f}",
                io,
                nbytes,
                f"{r['mem_mb']:.1f} MB",
            ]
        )
    return c.table(
        ["N items", "median (runs)", "vs N=0", "docs read / written", "bytes read / written", "peak RSS +"],
        rows,
    )


def section_partitioned(cfg: dict, results: dict) -> str:
    log("\n## upsert vs N, local filesystem, partition=year/month")
    raw = results.setdefault("partitioned", {})
    for n in cfg["partitioned_n"]:
        seed = c.seed_local("year/month", n, log)
        log(f"  pystac read of the seeded catalog: {c.check_seed_with_pystac(str(seed), full=n <= 1000)}")
        with c.mark_dirty(seed):
            raw[n] = run_cell(_ours_spec(str(seed), "year/month", cfg["ours_repeats"]))
        log(
            f"  N={n:>7,}  median {c.fmt_s(raw[n]['median'])}  "
            f"runs {[round(t, 4) for t in raw[n]['times']]}  get/put {raw[n]['counts'][-1][:2]}"
        )
    return _scaling_table(raw, cfg["partitioned_n"])


def section_s3(cfg: dict, results: dict) -> str:
    log("\n## upsert vs N, S3 (local moto server)")
    raw = results.setdefault("s3", {})
    blocks = []
    with c.S3Process() as s3:
        for partition in (None, "year/month"):
            name = c.layout_name(partition)
            raw[name] = {}
            for n in cfg["s3_n"]:
                prefix = f"{name}-{n}"
                seeded = s3.seed_direct(prefix, partition, n)
                log(
                    f"  seeded s3://{s3.bucket}/{prefix}: {seeded['count']:,} documents in "
                    f"{seeded['seconds']:.1f} s (server RSS {seeded['rss']:.0f} MB)"
                )
                raw[name][n] = run_cell(
                    _ours_spec(
                        s3.url(prefix), partition, cfg["s3_repeats"], storage_options=s3.storage_options
                    )
                )
                r = raw[name][n]
                log(
                    f"  {name:>10} N={n:>7,}  median {c.fmt_s(r['median'])}  "
                    f"runs {[round(t, 4) for t in r['times']]}  get/put {r['counts'][-1][:2]}"
                )
                s3.drop(prefix)
            blocks.append(
                f"**{'default layout' if partition is None else 'partition=year/month'}**"
                f"\n\n{_scaling_table(raw[name], cfg['s3_n'])}"
            )
    return "\n\n".join(blocks)


def section_throughput(cfg: dict, results: dict) -> str:
    n = cfg["throughput_n"]
    log(f"\n## throughput: one register() call with {n:,} COGs")
    cogs = c.ensure_cogs(POOL if n > 60 else max(n, 60), log)[:n]
    raw = results.setdefault("throughput", {})
    rows = []
    local = c.fresh_work_dir("throughput")
    raw["local"] = run_cell({"kind": "throughput", "catalog": str(local), "cogs": cogs})
    shutil.rmtree(local)
    with c.S3Process() as s3:
        raw["s3"] = run_cell(
            {
                "kind": "throughput",
                "catalog": s3.url("throughput"),
                "cogs": cogs,
                "storage_options": s3.storage_options,
            }
        )
    for where, r in (("local filesystem", raw["local"]), ("S3 (moto, 127.0.0.1)", raw["s3"])):
        log(
            f"  {where}: {r['n']} items in {r['seconds']:.1f} s = {r['items_per_s']:.0f} items/s; "
            f"validation errors after: {len(r['errors'])}"
        )
        if r["errors"]:
            raise RuntimeError(f"catalog invalid after throughput run: {r['errors']}")
        rows.append(
            [
                where,
                fmt_int(r["n"]),
                c.fmt_s(r["seconds"]),
                f"{r['items_per_s']:.0f}",
                f"{1000 * r['seconds'] / r['n']:.1f} ms",
                f"{r['mem_mb']:.0f} MB",
                "valid",
            ]
        )
    return c.table(
        ["catalog", "COGs", "wall time", "items/s", "per item", "peak RSS +", "validate_catalog after"], rows
    )


def section_reconcile(cfg: dict, results: dict) -> str:
    n = cfg["reconcile_n"]
    log(f"\n## reconcile: {n:,} items + {cfg['reconcile_orphans']} orphans + stale extent")
    seed = c.seed_local(None, n, log)
    work = c.WORK_DIR / "reconcile"
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(seed, work)
    with c.Ticker("reconcile"):
        r = run_cell({"kind": "reconcile", "catalog": str(work), "n": n, "orphans": cfg["reconcile_orphans"]})
    shutil.rmtree(work)
    results["reconcile"] = r
    log(
        f"  check {r['check_s']:.1f} s, found {r['found']}; fix {r['fix_s']:.1f} s, "
        f"fixed {r['fixed']}; remaining {r['remaining']}; linked {r['linked']}"
    )
    if r["remaining"] or r["linked"] != n + cfg["reconcile_orphans"]:
        raise RuntimeError(f"reconcile left problems: {r['remaining']}, linked {r['linked']}")
    found = ", ".join(f"{k} {v}" for k, v in sorted(r["found"].items()))
    fixed = ", ".join(f"{k} {v}" for k, v in sorted(r["fixed"].items()))
    return c.table(
        [
            "catalog",
            "reconcile (check only)",
            "reconcile --fix",
            "found",
            "fixed",
            "left after fix",
            "peak RSS + (check / fix)",
        ],
        [
            [
                f"{n:,} items + {cfg['reconcile_orphans']} orphans + stale extent",
                c.fmt_s(r["check_s"]),
                c.fmt_s(r["fix_s"]),
                found,
                fixed,
                "nothing",
                f"{r['check_mem_mb']:.0f} / {r['fix_mem_mb']:.0f} MB",
            ]
        ],
    )


RUNNERS = {
    "local": section_local,
    "partitioned": section_partitioned,
    "s3": section_s3,
    "throughput": section_throughput,
    "reconcile": section_reconcile,
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_cell"]:
        spec = json.loads(argv[1])
        print(json.dumps(CELLS[spec["kind"]](spec)), flush=True)
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small N, few repeats (< 1 minute)")
    ap.add_argument(
        "--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}"
    )
    ap.add_argument(
        "--write",
        dest="write",
        action="store_true",
        default=None,
        help="write the tables into BENCHMARKS.md (default: full runs only)",
    )
    ap.add_argument("--no-write", dest="write", action="store_false")
    ap.add_argument("--out", type=Path, default=c.BENCHMARKS_MD, help="markdown file to update")
    ap.add_argument("--json", type=Path, help="also dump the raw numbers here")
    args = ap.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    write = (not args.quick) if args.write is None else args.write
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        ap.error(f"unknown sections {sorted(unknown)}")

    t0 = time.perf_counter()
    log(f"{'quick' if args.quick else 'full'} run on {c.machine_note()}")
    c.ensure_cogs(POOL if not args.quick else 0, log)
    for i in (WARM_COG, *OURS_COGS, *TUTORIAL_COGS):
        if not c.cog_path(i).exists():
            c._write_cog(i)
    results: dict[str, Any] = {"mode": "quick" if args.quick else "full", "machine": c.machine_note()}
    tables = {}
    for name in sections:
        ts = time.perf_counter()
        tables[name] = RUNNERS[name](cfg, results)
        log(f"\n{tables[name]}\n  ({name}: {time.perf_counter() - ts:.0f} s)")
    results["seconds"] = time.perf_counter() - t0
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    if write:
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        c.write_section(
            "machine",
            f"Machine of the run below: {c.machine_note()}. The machine is "
            f"shared with other jobs and noisy (load average {load} at the "
            f"end of the upsert run on 2 cores).",
            args.out,
        )
        for name, body in tables.items():
            c.write_section(
                name, f"_{c.machine_note()}; {'quick' if args.quick else 'full'} mode._\n\n{body}", args.out
            )
        log(f"updated {args.out}")
    log(f"done in {results['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
