"""Where a warm upsert at N = 0 spends its CPU: thread CPU time per upsert
inside each step of the commit path, inclusive (rows nest).

    PYTHONPATH=$PWD .venv/bin/python bench/n0_steps.py [--repeats 300] [--work-dir /dev/shm/x]

Registers one COG into each of ``--repeats`` fresh copies of the N = 0
seed (``--seed``: bare, or emptied as ``bench/n0_cpu.py`` makes it;
``durability="os"``, as ``bench/n0_cpu.py``), after 20 warm-up
upserts, with ``time.thread_time_ns`` around each function of :data:`STEPS`
(about 1 us of timer per call: small functions called often read high;
cProfile overstates them 3-5x here). Prints thread CPU per upsert and calls
per upsert of each step. Run it in alternating processes against another
tree to compare.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common as c
from bench.upsert import OURS_COGS, POOL

#: (module, class or "", function): the steps timed
STEPS = [
    ("producer.api", "", "register"),
    ("producer.ingest", "", "register_products"),
    ("producer.ingest", "", "_prepare_chunk"),
    ("producer.ingest", "", "_write_items"),
    ("producer.ingest", "", "_link_written"),
    ("producer.commit", "Committer", "group_commit"),
    ("producer.commit", "Committer", "preflight"),
    ("producer.commit", "Committer", "_write_mirror_bases"),
    ("producer.commit", "Committer", "settle_batch"),
    ("producer.commit", "Committer", "link_items"),
    ("producer.commit", "Committer", "_optimistic_put"),
    ("producer.commit", "Committer", "check_update"),
    ("producer.commit", "Committer", "list_intents"),
    ("producer.commit", "Committer", "settle_items"),
    ("producer.commit", "Committer", "present_unmarked"),
    ("producer.commit", "Committer", "write_item"),
    ("producer.commit", "Committer", "_encode_created"),
    ("producer.catalog.documents", "", "dumps_with_line"),
    ("producer.ingest", "", "_publish"),
    ("producer.mirror", "", "encode_fragment"),
    ("producer.sinks", "", "deliver"),
    ("producer.mirror", "MirrorSink", "apply"),
    ("producer.mirror", "", "_fragment_name"),
    ("producer.mirror", "", "_tombstones_first"),
    ("producer.mirror", "", "_carries"),
    ("producer.mirror", "MirrorSink", "_maybe_compact"),
    ("producer.ingest", "", "collection_layout"),
    ("producer.store.open", "", "open_store"),
    ("producer.store.local", "LocalStore", "put"),
    ("producer.store.local", "LocalStore", "_read"),
    ("producer.store.local", "LocalStore", "get"),
    ("producer.store.local", "LocalStore", "list"),
    ("producer.store.local", "LocalStore", "_target_text"),
    ("producer.store.local", "LocalStore", "_make_folder"),
    ("producer.catalog.documents", "", "dumps"),
    ("producer.catalog.documents", "", "loads"),
    ("producer.catalog.documents", "", "copy_doc"),
    ("producer.catalog.documents", "", "merge_extent"),
    ("producer.catalog.summaries", "", "merge"),
    # the summaries, hrefs and extent pieces (sh37)
    ("producer.hrefs", "", "relative_assets"),
    ("producer.hrefs", "", "relative_to_item"),
    ("producer.catalog.extent", "", "extent_bboxes"),
    ("producer.catalog.extent", "", "union_bbox"),
    ("producer.catalog.extent", "", "union_interval"),
    ("producer.validate", "Validator", "check"),
    # the set-up around extraction (su37)
    ("producer.options", "", "resolve_options"),
    ("producer.ingest", "", "open_catalog"),
    ("producer.store.local", "LocalStore", "__init__"),
    ("producer.store.local", "", "_root_from_url"),
    ("producer.store.local", "", "_refuse_root_under_a_file"),
    ("producer.api", "", "build_sinks"),
    ("producer.sources", "", "expand_paths"),
    ("producer.sources", "", "_expand_local"),
    ("producer.options", "", "pipeline_metadata"),
    ("producer.grouping", "Grouping", "from_options"),
    ("producer.ingest", "", "_check_s3_product_options"),
    ("producer.urls", "", "check_endpoint_environment"),
    ("producer.commit", "Committer", "__init__"),
    ("producer.commit", "Committer", "finish_creations"),
    ("producer.ingest", "", "_extract_each"),
    ("producer.parallel", "", "prepare_all"),
    ("producer.ingest", "", "_prepare"),
    ("producer.extract.raster", "", "create_item"),
    ("producer.ingest", "", "_check_product"),
    ("producer.extract.ids", "", "make_item_id"),
    ("pystac.item", "Item", "to_dict"),
    ("producer.catalog.documents", "", "set_item_links"),
    ("producer.provenance", "", "apply"),
    ("producer.thumbnail", "", "prepare"),
    ("producer.thumbnail", "", "attach"),
    ("producer.logs", "", "log_result"),
    ("producer.logs", "", "log_register_summary"),
    ("producer.store.base", "", "durability"),
    ("producer.parallel", "", "extraction_workers"),
    ("producer.ingest", "", "check_collection_id"),
    ("producer.placement", "", "place_items"),
    ("producer.placement", "", "warn_if_crowded"),
    ("producer.placement", "", "warn_if_meta_kept"),
    ("producer.ingest", "", "_check_new_parents"),
    ("producer.commit", "Committer", "collection_title"),
    ("producer.commit", "Committer", "ensure_root"),
    ("producer.sinks", "", "check_sinks"),
    ("producer.store.base", "", "batch_durability"),
    ("producer.ingest", "", "_pipelines"),
    ("producer.options", "", "parse_rewrites"),
    ("producer.commit", "", "item_start"),
    ("producer.catalog.layout", "Layout", "item_key"),
    ("producer.catalog.layout", "Layout", "chain"),
    ("producer.extract.options", "ExtractOptions", "__init__"),
    ("producer.results", "Result", "__init__"),
    ("producer.ingest", "", "_register_chunk"),
]


def _timed(
    name: str, fn: Callable[..., Any], spent: dict[str, int], calls: dict[str, int]
) -> Callable[..., Any]:
    clock = time.thread_time_ns

    @functools.wraps(fn)
    def timed(*args: Any, **kwargs: Any) -> Any:
        start = clock()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[name] = spent.get(name, 0) + clock() - start
            calls[name] = calls.get(name, 0) + 1

    return timed


def _instrument(spent: dict[str, int], calls: dict[str, int]) -> list[str]:
    """Wrap every step (a module function wherever a producer module holds it)."""
    names = []
    for module_name, class_name, fn_name in STEPS:
        module = importlib.import_module(module_name)
        name = f"{class_name}.{fn_name}" if class_name else fn_name
        names.append(name)
        if class_name:
            owner = getattr(module, class_name)
            original = owner.__dict__[fn_name]
            if isinstance(original, staticmethod | classmethod):
                setattr(owner, fn_name, type(original)(_timed(name, original.__func__, spent, calls)))
            else:
                setattr(owner, fn_name, _timed(name, original, spent, calls))
            continue
        original = getattr(module, fn_name)
        wrapped = _timed(name, original, spent, calls)
        for held_in, mod in list(sys.modules.items()):
            if held_in.startswith("producer") and mod is not None:
                for attr, value in list(vars(mod).items()):
                    if value is original:
                        setattr(mod, attr, wrapped)
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--work-dir", type=Path, default=None)
    parser.add_argument("--seed", choices=("bare", "emptied"), default="bare")
    args = parser.parse_args(argv)
    import producer

    if args.work_dir is not None:
        args.work_dir.mkdir(parents=True, exist_ok=True)
        c.WORK_DIR = args.work_dir.resolve()
    spent: dict[str, int] = {}
    calls: dict[str, int] = {}
    names = _instrument(spent, calls)
    seed = c.seed_local(None, 0, log=lambda _: None)
    c.ensure_cogs(POOL, log=lambda _: None)
    if args.seed == "emptied":
        from bench.n0_cpu import _emptied

        seed = _emptied(seed, str(c.cog_path(OURS_COGS[0])))
    roots = []
    for i in range(args.repeats + 20):
        target = c.WORK_DIR / f"n0steps-{os.getpid()}-{i}"
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(seed, target)
        roots.append(target)
    cogs = [str(c.cog_path(i)) for i in OURS_COGS]

    def upsert(i: int) -> None:
        (result,) = producer.register(
            [cogs[i % len(cogs)]], catalog=str(roots[i]), collection=c.COLLECTION, durability="os"
        )
        if result.action != "created":
            raise RuntimeError(f"upsert gave {result.action}: {result.error}")

    for i in range(args.repeats, args.repeats + 20):  # warm-up
        upsert(i)
    spent.clear()
    calls.clear()
    load = Path("/proc/loadavg").read_text().split()[:3]
    start = time.thread_time_ns()
    for i in range(args.repeats):
        upsert(i)
    total = time.thread_time_ns() - start
    for root in roots:
        shutil.rmtree(root)
    n = args.repeats
    print(
        f"seed {args.seed}; load {' '.join(load)}; thread CPU per upsert {total / n / 1e3:.0f} us ({n} upserts)"
    )
    for name in names:
        print(f"{name:32s} {spent.get(name, 0) / n / 1e3:8.1f} us   {calls.get(name, 0) / n:.1f} calls")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
