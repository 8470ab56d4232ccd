"""The README's quick start as CI runs it, and its set-up on a fresh machine."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def quick_start() -> list[str]:
    """The commands of the README's quick start block, in order."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Quick start", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_ci_runs_the_readmes_set_up_and_test_commands():
    """.ci/run is the README's promise that its two commands work on a fresh
    clone: it must run them as written (pip's -q aside), not a variant."""
    set_up, tests = quick_start()[:2]
    ci = [
        line.replace("pip install -q ", "pip install ")
        for line in (ROOT / ".ci/run").read_text().splitlines()
    ]
    assert set_up in ci
    assert tests in ci
    assert ci.index(set_up) < ci.index(tests)


def test_system_packages_installs_venv_where_python_has_no_ensurepip(tmp_path):
    """Debian's python3 comes without ensurepip (python3-venv): there the
    README's ``python3 -m venv .venv`` failed right after system-packages.sh,
    which installed PostgreSQL only, and the demo never ran."""
    fake = tmp_path / "bin"
    fake.mkdir()
    calls = tmp_path / "apt-calls"
    scripts = {
        "python3": "exit 1\n",  # no ensurepip
        "apt-get": f'echo "$*" >> {calls}\n',
        "sudo": 'exec "$@"\n',  # never the real one
    }
    for name, body in scripts.items():
        (fake / name).write_text("#!/bin/sh\n" + body)
        (fake / name).chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}"}
    subprocess.run(["bash", str(ROOT / "scripts/system-packages.sh")], env=env, check=True, timeout=30)
    install = [line for line in calls.read_text().splitlines() if line.startswith("install")]
    assert install and re.search(r"\bpython3-venv\b", install[-1])


def test_every_venv_tool_the_docs_run_is_installed_where_they_say():
    """README's Development block ran ``.venv/bin/pre-commit install``, which
    the [dev] extra does not install: "No such file or directory"."""
    import tomllib

    dev = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["dev"]
    installed = {re.split(r"[<>=\[ ;]", requirement, maxsplit=1)[0].lower() for requirement in dev}
    installed |= {"python", "pip", "activate", "stac-producer"}  # the virtualenv's own, and this package
    docs = [ROOT / "README.md", ROOT / ".pre-commit-config.yaml", *sorted((ROOT / "docs").glob("*.md"))]
    missing = []
    for doc in docs:
        text = doc.read_text()
        for line in text.splitlines():
            for tool in re.findall(r"\.venv/bin/([A-Za-z0-9_.-]+)", line):
                if tool not in installed and f".venv/bin/pip install {tool}" not in text:
                    missing.append(f"{doc.name}: {line.strip()}")
    assert not missing, "tools the [dev] extra does not install, run without installing them:\n" + "\n".join(
        missing
    )
