"""deploy/prefect.yaml against a real Prefect server, the way the README deploys it.

One module-scoped ``prefect server start`` runs on 127.0.0.1 (free port, a
temporary ``PREFECT_HOME`` and SQLite database, no UI) as a subprocess. The
tests drive it only through the ``prefect`` command line, as a user does
(``work-pool create``, ``deploy --all``, ``worker start``, ``deployment run``,
``deployment ls``, ``work-pool ls``, ``flow-run logs``), and read results
back through the REST API with plain HTTP.

What this proves, and what broke with the old pins (fastapi 0.154 answered
the Prefect client with 422; SQLAlchemy 2.1 made the scheduler fail on every
loop): every deployment of deploy/prefect.yaml is created, the nightly cron
schedule gets scheduled runs from the server's own scheduler service, a
process worker runs the backfill deployment to Completed against the local
S3 server, and the items are in the catalog.

Every subprocess is started in its own session and killed (with every
descendant) when the module ends, whatever happened. Flow-run subprocesses
of the worker get the worker's environment: dummy AWS credentials and an
HTTP(S) proxy on a closed 127.0.0.1 port, so an S3 request that did not get
the local endpoint fails here instead of leaving the machine.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.rasters import write_cog, write_utm, write_wgs84
from tests.s3server import S3Server

ROOT = Path(__file__).resolve().parent.parent
PREFECT_YAML = ROOT / "deploy" / "prefect.yaml"
POOL = "stac-producer"

pytestmark = pytest.mark.slow

#: upper bounds (seconds) for each wait, generous for a loaded machine; the whole
#: module takes 1-3 minutes on 2 cores
SERVER_START_TIMEOUT = 180.0
CLI_TIMEOUT = 180.0
SCHEDULER_TIMEOUT = 60.0
FLOW_RUN_TIMEOUT = 180.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (Linux /proc; elsewhere none are found)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            stat = entry.read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _signal(pids: list[int], sig: int, group_of: int | None = None) -> None:
    """Send ``sig`` to each pid (to the whole process group of ``group_of``); gone ones are skipped."""
    for pid in pids:
        try:
            if pid == group_of:
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _kill_tree(proc: subprocess.Popen[bytes]) -> None:
    """Stop ``proc`` and everything it started: SIGTERM, then SIGKILL what is left after 10 s.

    The descendants are listed before the first signal (a dying parent
    orphans them, and they cannot be found from it afterwards).
    """
    pids = [proc.pid, *_descendants(proc.pid)]
    _signal(pids, signal.SIGTERM, group_of=proc.pid)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
    _signal(pids[1:] if proc.poll() is not None else pids, signal.SIGKILL, group_of=proc.pid)
    proc.wait(timeout=10)


@dataclass
class PrefectServer:
    """A running ``prefect server start`` and the environment its clients need."""

    api_url: str
    env: dict[str, str]
    home: Path
    log: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def cli(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = CLI_TIMEOUT
    ) -> subprocess.CompletedProcess[str]:
        """Run ``prefect <args>`` from the repository root (as the README does)."""
        return subprocess.run(
            [sys.executable, "-m", "prefect", *args],
            cwd=ROOT,
            env=env or self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def ok(self, *args: str, env: dict[str, str] | None = None) -> str:
        """Run ``prefect <args>``; fail the test with its output unless it exits 0."""
        done = self.cli(*args, env=env)
        assert done.returncode == 0, (
            f"`prefect {' '.join(args)}` exited {done.returncode}\n"
            f"--- stdout\n{done.stdout[-4000:]}\n--- stderr\n{done.stderr[-4000:]}"
        )
        return done.stdout

    def ok_together(self, *commands: tuple[str, ...]) -> list[str]:
        """Run several ``prefect`` commands at once (saves their start-up time); each must exit 0."""
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "prefect", *args],
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for args in commands
        ]
        outputs = []
        for args, proc in zip(commands, procs, strict=True):
            try:
                stdout, stderr = proc.communicate(timeout=CLI_TIMEOUT)
            except subprocess.TimeoutExpired:
                for p in procs:
                    p.kill()
                raise
            assert proc.returncode == 0, (
                f"`prefect {' '.join(args)}` exited {proc.returncode}\n"
                f"--- stdout\n{stdout[-4000:]}\n--- stderr\n{stderr[-4000:]}"
            )
            outputs.append(stdout)
        return outputs

    def spawn(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start a long-running ``prefect`` subprocess in its own session; stopped at module end."""
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "prefect", *args],
                cwd=ROOT,
                env=env or self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs.append(proc)
        return proc

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """One REST call to the server; raises on any non-2xx answer."""
        response = httpx.request(method, f"{self.api_url}{path}", json=body, timeout=30)
        response.raise_for_status()
        return response.json() if response.content else None

    def deployment(self, flow: str, name: str) -> dict[str, Any]:
        return self.api("GET", f"/deployments/name/{flow}/{name}")  # type: ignore[no-any-return]

    def flow_runs(self, deployment_id: str, state_types: list[str] | None = None) -> list[dict[str, Any]]:
        criteria: dict[str, Any] = {"deployments": {"id": {"any_": [deployment_id]}}, "limit": 200}
        if state_types:
            criteria["flow_runs"] = {"state": {"type": {"any_": state_types}}}
        return self.api("POST", "/flow_runs/filter", criteria)  # type: ignore[no-any-return]


def _tail(path: Path, chars: int = 6000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


def _server_env(home: Path, api_url: str) -> dict[str, str]:
    """The test's environment with every Prefect setting pointed at the temp server.

    Inherited ``PREFECT_*`` variables (conftest's, a developer's profile) are
    dropped so nothing reaches another server or database.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        {
            "PREFECT_HOME": str(home),
            "PREFECT_PROFILES_PATH": str(home / "profiles.toml"),
            "PREFECT_API_URL": api_url,
            "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home}/prefect.db",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_UI_ENABLED": "false",
            "PREFECT_UI_ENABLED": "false",
            "PREFECT_CLI_PROMPT": "false",
            "PREFECT_CLI_COLORS": "false",
            "PREFECT_CLI_WRAP_LINES": "false",
            "COLUMNS": "250",  # rich tables: full names, not "stac-produ…"
            # the code under test must come from this checkout, in every subprocess
            "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        }
    )
    return env


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """``prefect server start`` on 127.0.0.1 (free port, temp home + SQLite), stopped at module end."""
    home = tmp_path_factory.mktemp("prefect-server")
    port = _free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    server = PrefectServer(api_url, _server_env(home, api_url), home, home / "server.log")
    proc = server.spawn(["server", "start", "--host", "127.0.0.1", "--port", str(port)], server.log)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"prefect server exited {proc.returncode}:\n{_tail(server.log)}")
            try:
                if httpx.get(f"{api_url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"prefect server not healthy after {SERVER_START_TIMEOUT} s:\n{_tail(server.log)}"
                )
            time.sleep(0.5)
        yield server
    finally:
        for p in reversed(server.procs):
            _kill_tree(p)


@dataclass
class Deployed:
    server: PrefectServer
    s3: S3Server
    catalog: str
    data: str
    yaml_copy: Path
    deploy_output: str
    worker: subprocess.Popen[bytes]
    worker_log: Path


def _filled_prefect_yaml(dest: Path, catalog: str, data: str, endpoint_url: str) -> Path:
    """deploy/prefect.yaml with its placeholders replaced, as a user edits it.

    Placeholders: the catalog and data URLs, the ``pull`` directory (the
    checkout the worker runs from), and the work pool's job variables (the
    S3 endpoint goes into the flow runs' environment, as for MinIO). Each
    must be present exactly where the file says, so a renamed placeholder
    fails here instead of deploying the example values.
    """
    text = PREFECT_YAML.read_text()
    replacements = {
        "s3://my-catalog-bucket/stac": catalog,
        "s3://my-data-bucket/products/ndvi/": data,
        "directory: /opt/stac-producer": f"directory: {json.dumps(str(ROOT))}",
        "job_variables: {}": "job_variables: " + json.dumps({"env": {"AWS_ENDPOINT_URL": endpoint_url}}),
    }
    for old, new in replacements.items():
        assert old in text, f"placeholder {old!r} is gone from {PREFECT_YAML}"
        text = text.replace(old, new)
    assert "my-catalog-bucket" not in text and "my-data-bucket" not in text
    dest.write_text(text)
    return dest


@pytest.fixture(scope="module")
def deployed(
    prefect_server: PrefectServer, s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory
) -> Deployed:
    """The work pool and every deployment of deploy/prefect.yaml, created with the CLI."""
    s3 = s3_server._replace(bucket=s3_server.new_bucket())
    catalog, data = f"s3://{s3.bucket}/stac", f"s3://{s3.bucket}/products/ndvi/"
    copy = _filled_prefect_yaml(
        tmp_path_factory.mktemp("deploy") / "prefect.yaml", catalog, data, s3.endpoint_url
    )
    prefect_server.ok("work-pool", "create", POOL, "--type", "process")
    # the worker starts while the deployments are created (its start-up overlaps)
    worker_log = prefect_server.home / "worker.log"
    worker = prefect_server.spawn(
        ["worker", "start", "--pool", POOL, "--type", "process"], worker_log, env=_worker_env(prefect_server)
    )
    out = prefect_server.ok("deploy", "--prefect-file", str(copy), "--all")
    return Deployed(prefect_server, s3, catalog, data, copy, out, worker, worker_log)


def _worker_env(server: PrefectServer) -> dict[str, str]:
    """The worker's environment: AWS credentials (as an instance role would
    give them) but no endpoint, which comes from the deployment's job
    variables. Any request that does not get it goes to a dead proxy on
    127.0.0.1 and fails here."""
    dead = f"http://127.0.0.1:{_free_port()}"
    env = {k: v for k, v in server.env.items() if k != "AWS_ENDPOINT_URL"}
    env.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
            "HTTP_PROXY": dead,
            "HTTPS_PROXY": dead,
            "http_proxy": dead,
            "https_proxy": dead,
            "GDAL_HTTP_MAX_RETRY": "0",
            "PREFECT_WORKER_QUERY_SECONDS": "1",
            "PREFECT_WORKER_PREFETCH_SECONDS": "5",
        }
    )
    return env


# ---------------------------------------------------------------------------
# tests
# ---------------------------------------------------------------------------


def test_deploy_all_creates_every_deployment_of_prefect_yaml(deployed: Deployed) -> None:
    server = deployed.server
    wanted = {d["name"]: d for d in yaml.safe_load(PREFECT_YAML.read_text())["deployments"]}
    flows = {"nightly-reconcile": "stac-reconcile", "backfill": "stac-backfill", "s3-events": "stac-event"}
    assert set(wanted) == set(flows)
    for name, flow in flows.items():
        deployment = server.deployment(flow, name)
        assert deployment["work_pool_name"] == POOL, name
        assert deployment["entrypoint"] == wanted[name]["entrypoint"], name
        assert deployment["pull_steps"] == [
            {"prefect.deployments.steps.set_working_directory": {"directory": str(ROOT)}}
        ], name
    nightly = server.deployment("stac-reconcile", "nightly-reconcile")
    assert nightly["parameters"]["catalog"] == deployed.catalog
    assert nightly["parameters"]["data"] == deployed.data
    (schedule,) = nightly["schedules"]
    assert schedule["schedule"]["cron"] == "0 2 * * *" and schedule["active"] is True
    # the event trigger became an automation that runs the event deployment
    events = server.deployment("stac-event", "s3-events")
    # one run per event, bounded: runs above the limit are queued, not cancelled
    assert (events.get("global_concurrency_limit") or {}).get("limit") == 4, events
    assert (events.get("concurrency_options") or {}).get("collision_strategy") == "ENQUEUE", events
    automations = server.api("POST", "/automations/filter", {})
    assert any(
        action.get("deployment_id") == events["id"]
        for automation in automations
        for action in automation["actions"]
    ), automations


def test_cli_lists_work_pools_and_deployments_against_the_server(deployed: Deployed) -> None:
    """`work-pool ls` and `deployment ls` answered 422 with fastapi 0.154."""
    server = deployed.server
    pools, listed = server.ok_together(("work-pool", "ls"), ("deployment", "ls"))
    assert POOL in pools
    for name in ("stac-reconcile/nightly-reconcile", "stac-backfill/backfill", "stac-event/s3-events"):
        assert name in listed, listed


def test_nightly_cron_schedule_gets_scheduled_runs_from_the_scheduler(deployed: Deployed) -> None:
    """Only the server's scheduler service creates these runs (it failed every loop on SQLAlchemy 2.1)."""
    server = deployed.server
    nightly = server.deployment("stac-reconcile", "nightly-reconcile")
    deadline = time.monotonic() + SCHEDULER_TIMEOUT
    while True:
        runs = server.flow_runs(nightly["id"], ["SCHEDULED"])
        if len(runs) >= 3:  # the scheduler's minimum number of runs per deployment
            break
        if time.monotonic() > deadline:
            errors = [line for line in _tail(server.log, 20000).splitlines() if "rror" in line]
            pytest.fail(
                f"{len(runs)} scheduled run(s) after {SCHEDULER_TIMEOUT} s; server errors:\n"
                + "\n".join(errors[-20:])
            )
        time.sleep(1)
    starts = sorted(run["expected_start_time"] for run in runs)
    for start in starts:
        assert re.search(r"T02:00:00(\.0+)?(Z|\+00:00)$", start), starts
    assert len(set(s[:10] for s in starts)) == len(starts), "one run per night"
    assert all(run["parameters"]["catalog"] == deployed.catalog for run in runs)


def _wait_final(server: PrefectServer, flow_run_id: str, worker_log: Path) -> dict[str, Any]:
    deadline = time.monotonic() + FLOW_RUN_TIMEOUT
    while True:
        run = server.api("GET", f"/flow_runs/{flow_run_id}")
        state = run.get("state") or {}
        if state.get("type") in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            return run  # type: ignore[no-any-return]
        if time.monotonic() > deadline:
            pytest.fail(
                f"flow run {flow_run_id} still {state.get('type')} after {FLOW_RUN_TIMEOUT} s; "
                f"worker log:\n{_tail(worker_log)}"
            )
        time.sleep(1)


def test_worker_runs_backfill_deployment_to_completed(deployed: Deployed, tmp_path: Path) -> None:
    server, s3 = deployed.server, deployed.s3
    client = s3.client()
    products = [write_utm(tmp_path), write_wgs84(tmp_path), write_cog(tmp_path)]
    for i, path in enumerate(products):
        client.put_object(
            Bucket=s3.bucket, Key=f"products/ndvi/{2023 + i % 2}/{path.name}", Body=path.read_bytes()
        )

    worker, worker_log = deployed.worker, deployed.worker_log

    out = server.ok("deployment", "run", "stac-backfill/backfill", "--param", f"prefix={deployed.data}")
    match = re.search(r"UUID:\s*([0-9a-f-]{36})", out) or re.search(r"([0-9a-f]{8}-[0-9a-f-]{27})", out)
    assert match, out
    run = _wait_final(server, match.group(1), worker_log)
    assert worker.poll() is None, f"worker exited {worker.returncode}:\n{_tail(worker_log)}"
    logs = server.ok("flow-run", "logs", run["id"])
    assert run["state"]["type"] == "COMPLETED", f"{run['state']}\n--- flow run logs\n{logs[-6000:]}"
    assert "backfill summary" in logs

    # the items are in the catalog, linked from the collection
    def get(key: str) -> dict[str, Any]:
        return json.loads(client.get_object(Bucket=s3.bucket, Key=f"stac/{key}")["Body"].read())

    assert any(link["rel"] == "child" for link in get("catalog.json")["links"])
    items = sorted(link["href"] for link in get("ndvi/collection.json")["links"] if link["rel"] == "item")
    assert len(items) == len(products), items
    for path in products:
        item = get(f"ndvi/{path.stem}/{path.stem}.json")
        assert item["collection"] == "ndvi"
        assert any(a["href"].startswith(f"s3://{s3.bucket}/products/ndvi/") for a in item["assets"].values())
