"""Cold start (issue 12 point 6): the CLI as a program ends without
interpreter teardown but loses nothing (output, atexit work, exit code), asks
OpenBLAS for one thread before numpy loads, and a warm process validates
without reading a schema. No timing is asserted (bench/coldstart.py measures).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from producer import validate
from tests import rasters
from tests.trees import assert_stac_valid_tree

REPO = Path(__file__).resolve().parents[1]


def _run(code: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "OPENBLAS_"))}
    base["PYTHONPATH"] = str(REPO)
    base.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120, env=base, cwd=REPO
    )


#: run the CLI as the console script does (``sys.exit(main())``, arguments
#: from sys.argv), after registering an atexit handler that writes a file and
#: leaving ``sys.stdout`` with unflushed text (stdout is a pipe: block-buffered)
AS_PROGRAM = """
import atexit, sys
from pathlib import Path
marker = Path(sys.argv[1])
atexit.register(lambda: marker.write_text("atexit ran"))
sys.stdout.write("unflushed before the command\\n")
sys.argv = ["stac-producer", *sys.argv[2:]]
from producer.cli import main
sys.exit(main())
"""


#: an object whose finalizer runs at interpreter teardown, and only then
NOISY = """
import sys
class Noisy:
    def __del__(self):
        sys.stderr.write("finalized at teardown\\n")
keep = Noisy()
"""


def test_quick_exit_runs_atexit_flushes_and_keeps_the_exit_code(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    product = rasters.WRITERS["utm"](data)
    catalog = tmp_path / "cat"
    marker = tmp_path / "atexit"
    proc = _run(
        NOISY + AS_PROGRAM,
        str(marker),
        "register",
        str(product),
        "-c",
        str(catalog),
        "--collection",
        "c",
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    # a real registration leaves no thread that forces the slow exit
    assert "finalized at teardown" not in proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "unflushed before the command"
    assert json.loads(lines[-1])["action"] == "created"
    assert marker.read_text() == "atexit ran"
    assert_stac_valid_tree(catalog)


def test_quick_exit_keeps_a_failure_code_and_the_error_message(tmp_path: Path) -> None:
    marker = tmp_path / "atexit"
    # usage error: exit 2 and click's message on stderr
    proc = _run(AS_PROGRAM, str(marker), "register", str(tmp_path / "none.tif"), "--no-such-flag")
    assert proc.returncode == 2, proc
    assert "no such option" in proc.stderr.lower()
    assert marker.read_text() == "atexit ran"
    # a product that cannot be read: exit 1, the product named, storage untouched
    bad = tmp_path / "broken_20240513.tif"
    bad.write_bytes(b"not a tiff")
    catalog = tmp_path / "cat"
    marker.unlink()
    proc = _run(AS_PROGRAM, str(marker), "register", str(bad), "-c", str(catalog), "--collection", "c")
    assert proc.returncode == 1, proc
    assert "broken_20240513.tif" in proc.stdout + proc.stderr
    assert marker.read_text() == "atexit ran"
    assert not (catalog / "c").exists()


def test_quick_exit_skips_interpreter_teardown() -> None:
    """Teardown is really skipped: an object's finalizer that would run at
    interpreter shutdown does not (atexit handlers do)."""
    code = NOISY + AS_PROGRAM
    proc = _run(code, os.devnull, "--help")
    assert proc.returncode == 0, proc.stderr
    assert "Usage:" in proc.stdout
    assert "finalized at teardown" not in proc.stderr
    # the same object in a plain interpreter is finalized: the check can fail
    plain = _run(NOISY)
    assert "finalized at teardown" in plain.stderr


def test_live_non_daemon_thread_means_a_normal_exit() -> None:
    """A non-daemon thread still running when the command ends is joined, as
    Python does, and its work is not cut short."""
    code = (
        "import threading, time, sys\n"
        "def late():\n"
        "    time.sleep(0.5)\n"
        "    print('thread finished', flush=True)\n"
        "threading.Thread(target=late).start()\n" + AS_PROGRAM
    )
    proc = _run(code, os.devnull, "--help")
    assert proc.returncode == 0, proc.stderr
    assert "thread finished" in proc.stdout


def test_openblas_asked_for_one_thread_before_numpy_loads_in_the_cli(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    product = rasters.WRITERS["utm"](data)
    # record the variable at the moment numpy is first imported
    code = (
        "import builtins, os, sys\n"
        "seen = []\n"
        "real = builtins.__import__\n"
        "def spy(name, *a, **k):\n"
        "    if name.split('.')[0] == 'numpy' and not seen:\n"
        "        seen.append(os.environ.get('OPENBLAS_NUM_THREADS'))\n"
        "        sys.stderr.write(f'OPENBLAS at numpy import: {seen[0]}\\n')\n"
        "    return real(name, *a, **k)\n"
        "builtins.__import__ = spy\n" + AS_PROGRAM
    )
    args = ["register", str(product), "-c", str(tmp_path / "cat"), "--collection", "c"]
    proc = _run(code, os.devnull, *args)
    assert proc.returncode == 0, proc.stderr
    assert "OPENBLAS at numpy import: 1" in proc.stderr
    # a value the user set wins
    proc = _run(
        code, os.devnull, *[a.replace("cat", "cat2") for a in args], env={"OPENBLAS_NUM_THREADS": "2"}
    )
    assert proc.returncode == 0, proc.stderr
    assert "OPENBLAS at numpy import: 2" in proc.stderr


def test_the_library_does_not_quick_exit_or_touch_the_environment() -> None:
    """``main([...])`` with arguments (tests, CliRunner, a caller's script)
    raises SystemExit as click does and leaves OPENBLAS_NUM_THREADS alone."""
    code = (
        "import os\n"
        "from producer.cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit as exc:\n"
        "    print('SystemExit', exc.code, os.environ.get('OPENBLAS_NUM_THREADS'))\n"
    )
    proc = _run(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "SystemExit 0 None"


def test_a_module_calling_main_gets_a_system_exit_it_can_catch(tmp_path: Path) -> None:
    """Only the __main__ module (the console script, ``python -m``) is the
    program: a module that calls ``main()`` with ``sys.argv`` set (a user's
    script importing a helper, a test) got the process ended under it."""
    (tmp_path / "helper_calls_cli.py").write_text(
        "import sys\n"
        "sys.argv = ['stac-producer', '--help']\n"
        "from producer.cli import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exc:\n"
        "    print('caught', exc.code)\n"
    )
    proc = _run(
        f"import sys; sys.path.insert(0, {str(tmp_path)!r}); import helper_calls_cli; print('went on')"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-2:] == ["caught 0", "went on"]


@pytest.mark.parametrize("value", [None, 0, 3, "message"])
def test_exit_code_matches_sys_exit(value: object) -> None:
    from producer.process import exit_code

    expected = _run(f"import sys; sys.exit({value!r})").returncode
    assert exit_code(value) == expected


# --------------------------------------------------------------------------
# The compiled-check cache: a warm process parses no schema
# --------------------------------------------------------------------------

#: register one product with every schema file read counted; prints the count
COUNT_SCHEMA_READS = """
import json, sys
from producer import validate
reads = []
real = validate._read_json
def counting(file):
    reads.append(str(file))
    return real(file)
validate._read_json = counting
import producer
(r,) = producer.register([sys.argv[1]], catalog=sys.argv[2], collection="c")
assert r.action == "created", r.error
print(json.dumps(len(reads)))
"""


def _schema_reads(tmp_path: Path, cache: Path, run: str, prefix: str = "") -> int:
    data = tmp_path / "data"
    product = data / "utm_20240513.tif"
    if not product.exists():
        data.mkdir(exist_ok=True)
        product = rasters.WRITERS["utm"](data)
    catalog = tmp_path / f"cat-{run}"
    code = prefix + COUNT_SCHEMA_READS
    proc = _run(code, str(product), str(catalog), env={"STAC_PRODUCER_CACHE_DIR": str(cache)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_stac_valid_tree(catalog)
    return int(json.loads(proc.stdout.splitlines()[-1]))


def test_a_warm_process_parses_no_schema(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert _schema_reads(tmp_path, cache, "cold") > 0  # the first process compiles
    assert len(list(cache.glob(f"{validate._INDEX_PREFIX}*.json"))) == 1
    assert _schema_reads(tmp_path, cache, "warm") == 0


def test_a_cache_built_by_another_version_is_not_trusted(tmp_path: Path) -> None:
    """The index matched schema files by name, size and time only: another
    stac-producer sharing the cache (same sizes and times, as reproducible
    builds give) would have used checks compiled from other schemas."""
    cache = tmp_path / "cache"
    assert _schema_reads(tmp_path, cache, "cold") > 0
    assert (
        _schema_reads(
            tmp_path, cache, "other", prefix="import producer; producer.__version__ = '0.0.0-other'\n"
        )
        > 0
    )


def test_two_installs_sharing_a_cache_both_stay_warm(tmp_path: Path) -> None:
    """Each install wrote its own stamp into the one index, so two of them
    sharing ``~/.cache`` overwrote each other's and recompiled on every run."""
    cache = tmp_path / "cache"
    other = "import producer; producer.__version__ = '0.0.0-other'\n"
    assert _schema_reads(tmp_path, cache, "cold") > 0
    assert _schema_reads(tmp_path, cache, "other-cold", prefix=other) > 0
    assert _schema_reads(tmp_path, cache, "warm") == 0
    assert _schema_reads(tmp_path, cache, "other-warm", prefix=other) == 0


def test_precompiled_cache_leaves_nothing_to_parse(tmp_path: Path) -> None:
    """What the Lambda image does at build time (deploy/Dockerfile)."""
    cache = tmp_path / "cache"
    proc = _run(
        "from producer.validate import precompile; precompile()", env={"STAC_PRODUCER_CACHE_DIR": str(cache)}
    )
    assert proc.returncode == 0, proc.stderr
    assert _schema_reads(tmp_path, cache, "warm") == 0


@pytest.mark.parametrize(
    "damage",
    ["garbage index", "old-format index", "stale index", "truncated checks", "path in index"],
)
def test_a_damaged_or_old_cache_is_ignored_and_rebuilt(tmp_path: Path, damage: str) -> None:
    cache = tmp_path / "cache"
    assert _schema_reads(tmp_path, cache, "cold") > 0
    (index_file,) = cache.glob(f"{validate._INDEX_PREFIX}*.json")
    index = json.loads(index_file.read_text())
    if damage == "garbage index":
        index_file.write_bytes(b"\x00{not json")
    elif damage == "old-format index":
        index_file.write_text(json.dumps({**index, "format": "1"}))
    elif damage == "stale index":  # as after an upgrade of the schemas
        index_file.write_text(json.dumps({**index, "stamp": "0" * 64}))
    elif damage == "truncated checks":
        for marshal_file in cache.glob("*.marshal"):
            marshal_file.write_bytes(marshal_file.read_bytes()[:20])
    else:
        index["checks"] = {url: "../../etc/passwd" for url in index["checks"]}
        index_file.write_text(json.dumps(index))
    # still registers a valid item (the damaged part is rebuilt) ...
    _schema_reads(tmp_path, cache, "after")
    # ... and the next process is warm again
    assert _schema_reads(tmp_path, cache, "rebuilt") == 0
