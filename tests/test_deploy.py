"""deploy/: the SAM template is valid and least-privilege, the Lambda entry works.

``cfn-lint`` runs on the template as a subprocess (it is a dev dependency; it
never needs the network). The Lambda entry point is imported from its file,
as the container's runtime does, and invoked against the local S3 server.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import inspect
import json
import os
import posixpath
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.rasters import write_utm
from tests.s3server import S3Server

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
TEMPLATE = DEPLOY / "template.yaml"
EVENTS = Path(__file__).parent / "events"


# ---------------------------------------------------------------------------
# the template
# ---------------------------------------------------------------------------


class _CfnLoader(yaml.SafeLoader):
    """A safe YAML loader that turns CloudFormation short tags into their long form."""


def _cfn_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _cfn_tag)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    doc = yaml.load(TEMPLATE.read_text(), Loader=_CfnLoader)
    assert isinstance(doc, dict)
    return doc


def _resources(template: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    return {name: res for name, res in template["Resources"].items() if res["Type"] == type_}


def _one(template: dict[str, Any], type_: str) -> tuple[str, dict[str, Any]]:
    found = _resources(template, type_)
    assert len(found) == 1, f"expected one {type_}, found {sorted(found)}"
    return next(iter(found.items()))


def _function(template: dict[str, Any]) -> dict[str, Any]:
    return _one(template, "AWS::Serverless::Function")[1]


def _statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    """Every statement the role may hold: a conditional one (``!If [C, s, NoValue]``) counts."""
    role_name = _function(template)["Properties"]["Role"]["Fn::GetAtt"][0]
    role = template["Resources"][role_name]
    assert role["Type"] == "AWS::IAM::Role"
    assert "ManagedPolicyArns" not in role["Properties"]  # nothing broader sneaks in
    out: list[dict[str, Any]] = []
    for policy in role["Properties"]["Policies"]:
        for statement in policy["PolicyDocument"]["Statement"]:
            if list(statement) == ["Fn::If"]:
                _, statement, otherwise = statement["Fn::If"]
                assert otherwise == {"Ref": "AWS::NoValue"}
            out.append(statement)
    return out


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _sub(value: Any) -> str:
    """A string value as ``!Sub`` text: ``!Sub "x${A}"`` → ``x${A}``, ``!Ref A`` → ``${A}``."""
    if isinstance(value, dict) and list(value) == ["Ref"]:
        return "${" + value["Ref"] + "}"
    if isinstance(value, dict):
        assert list(value) == ["Fn::Sub"], value
        value = value["Fn::Sub"]
    assert isinstance(value, str)
    return value


def test_template_parses_as_sam(template: dict[str, Any]) -> None:
    assert template["Transform"] == "AWS::Serverless-2016-10-31"
    assert {"DataBucket", "DataPrefix", "CatalogBucket", "CatalogPrefix", "CollectionId"} <= set(
        template["Parameters"]
    )


def test_template_passes_cfn_lint() -> None:
    exe = Path(sys.executable).with_name("cfn-lint")
    cmd = [str(exe)] if exe.exists() else [shutil.which("cfn-lint") or "cfn-lint"]
    proc = subprocess.run([*cmd, str(TEMPLATE)], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_function_runs_the_lambda_entry_point(template: dict[str, Any]) -> None:
    fn = _function(template)
    props = fn["Properties"]
    assert props["PackageType"] == "Image"
    assert props["ImageConfig"]["Command"] == ["lambda_handler.handler"]
    # sam build: DockerContext is relative to the template, Dockerfile to the context
    context = (TEMPLATE.parent / fn["Metadata"]["DockerContext"]).resolve()
    assert context == ROOT and (context / fn["Metadata"]["Dockerfile"]).is_file()
    env = props["Environment"]["Variables"]
    assert _sub(env["STAC_CATALOG"]) == "s3://${CatalogBucket}/${CatalogPrefix}"
    assert env["STAC_COLLECTION"] == {"Ref": "CollectionId"}
    assert env["STAC_PREFIXES"] == {"Ref": "DataPrefix"}


def test_iam_writes_only_under_the_catalog_prefix(template: dict[str, Any]) -> None:
    statements = _statements(template)
    assert all(s["Effect"] == "Allow" for s in statements)
    for s in statements:
        for action in _as_list(s["Action"]):
            assert "*" not in action, f"wildcard action {action} in {s.get('Sid')}"
        for resource in _as_list(s["Resource"]):
            assert resource != "*", f"wildcard resource in {s.get('Sid')}"

    catalog_objects = "arn:${AWS::Partition}:s3:::${CatalogBucket}/${CatalogPrefix}/*"
    data_objects = "arn:${AWS::Partition}:s3:::${DataBucket}/${DataPrefix}*"
    s3_actions: dict[str, set[str]] = {}
    for s in statements:
        for action in _as_list(s["Action"]):
            if action.startswith("s3:"):
                for resource in _as_list(s["Resource"]):
                    s3_actions.setdefault(action, set()).add(_sub(resource))
    assert s3_actions["s3:PutObject"] == {catalog_objects}
    assert s3_actions["s3:DeleteObject"] == {catalog_objects}
    assert s3_actions["s3:GetObject"] == {catalog_objects, data_objects}
    assert s3_actions["s3:ListBucket"] == {
        "arn:${AWS::Partition}:s3:::${CatalogBucket}",
        "arn:${AWS::Partition}:s3:::${DataBucket}",
    }
    assert set(s3_actions) == {"s3:PutObject", "s3:DeleteObject", "s3:GetObject", "s3:ListBucket"}
    # ListBucket has no s3:prefix condition: see
    # test_first_registration_into_an_empty_catalog_is_allowed_by_the_policy
    for s in statements:
        if "s3:ListBucket" in _as_list(s["Action"]):
            assert "Condition" not in s, s


def test_catalog_prefix_parameter_cannot_widen_the_grant(template: dict[str, Any]) -> None:
    pattern = re.compile(template["Parameters"]["CatalogPrefix"]["AllowedPattern"])
    assert pattern.fullmatch("stac") and pattern.fullmatch("team/stac")
    for bad in ["", "/stac", "stac/", "/"]:
        assert not pattern.fullmatch(bad), bad


def test_queue_has_dead_letter_queue(template: dict[str, Any]) -> None:
    queues = _resources(template, "AWS::SQS::Queue")
    main = [q for q in queues.values() if "RedrivePolicy" in q["Properties"]]
    assert len(main) == 1
    redrive = main[0]["Properties"]["RedrivePolicy"]
    dlq_name = redrive["deadLetterTargetArn"]["Fn::GetAtt"][0]
    assert dlq_name in queues and dlq_name != next(k for k, v in queues.items() if v is main[0])
    assert redrive["maxReceiveCount"] == {"Ref": "MaxReceiveCount"}
    assert template["Parameters"]["MaxReceiveCount"]["Default"] >= 1
    # SQS visibility must outlast the function (AWS recommends 6x the timeout)
    timeout = _function(template)["Properties"]["Timeout"]
    assert main[0]["Properties"]["VisibilityTimeout"] >= 6 * timeout


def test_queue_policy_allows_only_the_data_bucket(template: dict[str, Any]) -> None:
    _, policy = _one(template, "AWS::SQS::QueuePolicy")
    (statement,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "s3.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    assert (
        _sub(statement["Condition"]["ArnLike"]["aws:SourceArn"]) == "arn:${AWS::Partition}:s3:::${DataBucket}"
    )
    assert statement["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}


def test_bucket_notifications_filtered_by_prefix(template: dict[str, Any]) -> None:
    name, bucket = _one(template, "AWS::S3::Bucket")
    assert bucket["Condition"] == "CreateBucket" and bucket["DependsOn"] == "EventQueuePolicy"
    configs = bucket["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
    # Lifecycle expirations are their own event type: without it, expired products keep their items
    assert sorted(c["Event"] for c in configs) == [
        "s3:LifecycleExpiration:*",
        "s3:ObjectCreated:*",
        "s3:ObjectRemoved:*",
    ]
    for c in configs:
        assert c["Queue"] == {"Fn::GetAtt": ["EventQueue", "Arn"]}
        condition, with_prefix, without = c["Filter"]["Fn::If"]
        assert condition == "HasDataPrefix" and without == {"Ref": "AWS::NoValue"}
        assert with_prefix["S3Key"]["Rules"] == [{"Name": "prefix", "Value": {"Ref": "DataPrefix"}}]


def test_event_source_reports_batch_item_failures(template: dict[str, Any]) -> None:
    events = _function(template)["Properties"]["Events"]
    sqs = [e["Properties"] for e in events.values() if e["Type"] == "SQS"]
    assert len(sqs) == 1
    assert sqs[0]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert sqs[0]["Queue"] == {"Fn::GetAtt": ["EventQueue", "Arn"]}
    assert sqs[0]["BatchSize"] == {"Ref": "BatchSize"}


# ---------------------------------------------------------------------------
# the Dockerfile, read as docker would (no docker here)
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    name: str  # upper case: FROM, COPY, RUN, ...
    args: str  # the rest, continuation lines joined, ARG defaults substituted
    workdir: str  # the WORKDIR in force when it runs


def _dockerfile(path: Path) -> list[Instruction]:
    """The instructions of a Dockerfile: comments dropped, ``\\``-continued
    lines joined, ``${NAME}`` of an ``ARG NAME=default`` substituted (others,
    such as the base image's ``LAMBDA_TASK_ROOT``, are left as they are)."""
    logical: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, f"{path}: the last instruction ends with a continuation"
    args: dict[str, str] = {}
    workdir = "/"
    out: list[Instruction] = []
    for line in logical:
        name, _, rest = line.partition(" ")
        rest = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), rest.strip())
        name = name.upper()
        if name == "ARG" and "=" in rest:
            key, _, value = rest.partition("=")
            args[key] = value
        out.append(Instruction(name, rest, workdir))
        if name == "WORKDIR":
            workdir = rest
    return out


def _one_instruction(instructions: list[Instruction], name: str) -> Instruction:
    found = [i for i in instructions if i.name == name]
    assert len(found) == 1, f"expected one {name} in deploy/Dockerfile, found {len(found)}"
    return found[0]


def _dockerignore_excludes(patterns: list[str], path: str) -> bool:
    """Docker's rule: the last pattern that matches the path or one of its
    parent folders decides; ``!`` re-includes; ``*`` stays within a folder."""

    def regex(pattern: str) -> re.Pattern[str]:
        out, i = "", 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                out, i = out + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                out, i = out + ".*", i + 2
            elif pattern[i] == "*":
                out, i = out + "[^/]*", i + 1
            elif pattern[i] == "?":
                out, i = out + "[^/]", i + 1
            elif pattern[i] == "[":
                end = pattern.index("]", i)
                out, i = out + pattern[i : end + 1], end + 1
            else:
                out, i = out + re.escape(pattern[i]), i + 1
        return re.compile(out + r"\Z")

    parts = path.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        body = pattern.lstrip("!").strip("/")
        if any(regex(body).match(c) for c in candidates):
            excluded = not negated
    return excluded


@pytest.fixture(scope="module")
def dockerfile() -> list[Instruction]:
    return _dockerfile(DEPLOY / "Dockerfile")


def test_dockerfile_builds_on_a_lambda_python_image_the_project_supports(
    dockerfile: list[Instruction],
) -> None:
    image = _one_instruction(dockerfile, "FROM").args
    repository, _, tag = image.partition(":")
    assert repository == "public.ecr.aws/lambda/python", image
    requires = SpecifierSet(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    )
    assert tag in requires, f"base image Python {tag} is outside requires-python {requires}"
    # the pinned rasterio/numpy wheels are manylinux_2_28: the python3.11 image (Amazon
    # Linux 2, glibc 2.26) would build GDAL bindings from source; 3.12+ is Amazon Linux 2023
    assert Version(tag) >= Version("3.12"), image


def test_dockerfile_cmd_is_a_handler_taking_event_and_context(dockerfile: list[Instruction]) -> None:
    command = json.loads(_one_instruction(dockerfile, "CMD").args)  # exec form: a JSON list
    assert isinstance(command, list) and len(command) == 1, command
    module_name, _, function = command[0].rpartition(".")
    # the runtime imports the module from LAMBDA_TASK_ROOT: some COPY must put it there
    copied = [
        i.args.split()
        for i in dockerfile
        if i.name == "COPY" and i.args.split()[-1].rstrip("/") == "${LAMBDA_TASK_ROOT}"
    ]
    sources = [Path(src) for *srcs, _ in copied for src in srcs]
    (source,) = [src for src in sources if src.name == f"{module_name}.py"]
    spec = importlib.util.spec_from_file_location(module_name, ROOT / source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    handler = getattr(module, function)
    assert callable(handler)
    inspect.signature(handler).bind({"Records": []}, object())  # Lambda calls handler(event, context)


def test_dockerfile_copies_files_that_exist_and_the_dockerignore_sends(dockerfile: list[Instruction]) -> None:
    ignore = [
        line.strip()
        for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    copies = [i.args.split() for i in dockerfile if i.name == "COPY"]
    assert copies
    for *sources, _destination in copies:
        for source in sources:
            # "README.m[d]": a glob that may match nothing, so that the file stays optional
            matched = sorted(ROOT.glob(source))
            assert matched or any(c in source for c in "*?["), f"COPY {source}: no such file"
            for path in matched:
                files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
                files = [f for f in files if "__pycache__" not in f.parts]
                assert files, f"COPY {source}: nothing to copy"
                for f in files:
                    rel = f.relative_to(ROOT).as_posix()
                    assert not _dockerignore_excludes(ignore, rel), (
                        f"COPY {source}: {rel} is in .dockerignore"
                    )
    # and what must never reach the image stays out of the build context
    for rel in (".venv/bin/python", "tests/conftest.py", "producer/__pycache__/api.cpython-311.pyc"):
        assert _dockerignore_excludes(ignore, rel), rel


def _install_closure(project: str, extras: set[str]) -> set[str]:
    """Normalized names of every distribution ``pip install project[extras]``
    brings in, read from the installed metadata (markers evaluated here)."""
    seen: set[str] = set()
    todo: list[tuple[str, set[str]]] = [(project, extras)]
    while todo:
        name, wanted = todo.pop()
        key = canonicalize_name(name)
        if key in seen and not wanted:
            continue
        seen.add(key)
        for text in importlib.metadata.requires(name) or []:
            req = Requirement(text)
            envs = [{"extra": e} for e in wanted] or [{"extra": ""}]
            needed = req.marker is None or any(req.marker.evaluate(env) for env in envs)
            if needed and (canonicalize_name(req.name) not in seen or req.extras):
                todo.append((req.name, set(req.extras)))
    return seen


def test_dockerfile_installs_this_package_with_what_the_handler_imports(
    dockerfile: list[Instruction], lambda_env: S3Server, tmp_path: Path
) -> None:
    (run,) = [i for i in dockerfile if i.name == "RUN" and "pip install" in i.args]
    lexer = shlex.shlex(run.args, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    for token in lexer:
        if token in (";", "&&", "||", "|"):
            commands.append([])
        else:
            commands[-1].append(token)
    (pip,) = [c for c in commands if c[:2] == ["pip", "install"]]
    # "$constraints" expands to options (a constraints file), never to a target
    target = [t for t in pip[2:] if not t.startswith(("-", "$"))]
    assert len(target) == 1, run.args
    match = re.fullmatch(r"(.+?)(?:\[([\w,\s-]*)\])?", target[0])
    assert match, target
    project_dir, extras_text = match.group(1), match.group(2) or ""
    # "." is the WORKDIR, where pyproject.toml was copied
    (copy_pyproject,) = [
        i for i in dockerfile if i.name == "COPY" and "pyproject.toml" in i.args.split()[:-1]
    ]
    assert copy_pyproject.workdir == run.workdir and copy_pyproject.args.split()[-1] in ("./", ".")
    assert project_dir == "."
    extras = {canonicalize_name(e) for e in extras_text.split(",") if e.strip()}
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert extras <= set(pyproject["optional-dependencies"]), extras
    closure = _install_closure(pyproject["name"], extras)

    # The handler registers a product from S3 in a process that can import only
    # what that install brings (plus the standard library and this checkout):
    # any other distribution of this virtualenv is hidden, as it is in the image.
    # Its imports are lazy (cold start), so it has to run to show what it needs.
    s3 = lambda_env
    s3.client().put_object(
        Bucket=s3.bucket, Key="products/ndvi/S2_20240608_T31UFQ.tif", Body=write_utm(tmp_path).read_bytes()
    )
    event = tmp_path / "event.json"
    event.write_text((EVENTS / "sqs_malformed.json").read_text().replace("amzn-s3-demo-bucket", s3.bucket))
    (tmp_path / "image_only.py").write_text(_IMAGE_ONLY)
    done = subprocess.run(
        [sys.executable, str(tmp_path / "image_only.py"), json.dumps(sorted(closure)), str(event)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    registered, loaded, hidden = json.loads(done.stdout.splitlines()[-1])
    assert registered == ["S2_20240608_T31UFQ"], done.stderr[-4000:]
    assert {"rasterio", "s3fs", "pystac"} <= set(loaded)  # it did the real work
    assert "prefect" not in loaded and "prefect" in hidden  # and the hiding is real


def test_dockerfile_precompiles_the_schema_checks_and_the_handler(
    dockerfile: list[Instruction], tmp_path: Path
) -> None:
    """Cold start: the image holds the compiled schema checks (where the
    function finds them at run time) and the handler's .pyc. The build steps
    run here with the image's paths moved under tmp_path."""
    envs = {
        i.args.partition("=")[0]: (n, i.args.partition("=")[2])
        for n, i in enumerate(dockerfile)
        if i.name == "ENV"
    }
    assert "STAC_PRODUCER_CACHE_DIR" in envs, "no ENV STAC_PRODUCER_CACHE_DIR in deploy/Dockerfile"
    env_at, cache = envs["STAC_PRODUCER_CACHE_DIR"]
    assert cache.startswith("/opt/"), cache  # in the image, not the writable /tmp
    (at, run) = next((n, i) for n, i in enumerate(dockerfile) if i.name == "RUN" and "precompile" in i.args)
    assert env_at < at, "the cache variable must be set before the precompile step"
    argv = shlex.split(run.args)
    assert argv[0] == "python", argv
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(PYTHONPATH=str(ROOT), STAC_PRODUCER_CACHE_DIR=str(tmp_path / "validators"))
    done = subprocess.run(
        [sys.executable, *argv[1:]], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # a process on that cache (the function at run time) parses no schema file
    count = (
        "from producer import validate\n"
        "reads = []\n"
        "real = validate._read_json\n"
        "validate._read_json = lambda f: reads.append(f) or real(f)\n"
        "assert validate.precompile()\n"
        "print(len(reads))\n"
    )
    done = subprocess.run([sys.executable, "-c", count], env=env, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["0"]

    (copy_at, _) = next(
        (n, i)
        for n, i in enumerate(dockerfile)
        if i.name == "COPY" and i.args.startswith("deploy/lambda_handler.py")
    )
    (compile_at, compile_run) = next(
        (n, i) for n, i in enumerate(dockerfile) if i.name == "RUN" and "compileall" in i.args
    )
    assert copy_at < compile_at
    task_root = tmp_path / "task"
    task_root.mkdir()
    shutil.copy(DEPLOY / "lambda_handler.py", task_root)
    argv = shlex.split(compile_run.args.replace("${LAMBDA_TASK_ROOT}", str(task_root)))
    done = subprocess.run([sys.executable, *argv[1:]], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert list((task_root / "__pycache__").glob("lambda_handler.*.pyc"))


#: Run as a script: argv = [json list of distributions, event file]. Prints
#: [registered ids, top-level modules loaded, modules it refused to import].
_IMAGE_ONLY = f"""
import importlib.abc, importlib.metadata, importlib.util, json, sys
from packaging.utils import canonicalize_name

allowed = set(json.loads(sys.argv[1]))
owners = importlib.metadata.packages_distributions()
hidden = set()

class ImageOnly(importlib.abc.MetaPathFinder):
    # wraps a finder: modules of distributions not in the image are not found

    def __init__(self, inner):
        self.inner = inner

    def find_spec(self, name, path, target=None):
        top = name.partition(".")[0]
        dists = {{canonicalize_name(d) for d in owners.get(top, [])}}
        if top not in sys.stdlib_module_names and dists and not dists & allowed:
            hidden.add(top)
            return None
        return self.inner.find_spec(name, path, target)

    def invalidate_caches(self):
        getattr(self.inner, "invalidate_caches", lambda: None)()

before = set(sys.modules)
sys.meta_path[:] = [ImageOnly(finder) for finder in sys.meta_path]
for loaded_here in [m for m in sys.modules if m.partition(".")[0] == "packaging"]:
    del sys.modules[loaded_here]  # this script's tool: the handler must find it (or not) on its own
try:
    import prefect  # noqa: F401  (in this virtualenv, not in the image)
    sys.exit("prefect was importable: the hiding does not work")
except ModuleNotFoundError:
    pass
spec = importlib.util.spec_from_file_location("lambda_handler", {str(DEPLOY / "lambda_handler.py")!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
result = module.handler(json.loads(open(sys.argv[2]).read()), None)
loaded = sorted({{m.partition(".")[0] for m in set(sys.modules) - before}})
print(json.dumps(result["failed"], default=str), file=sys.stderr)
print(json.dumps([[r["id"] for r in result["registered"]], loaded, sorted(hidden)]))
"""


# ---------------------------------------------------------------------------
# the template, resolved for one set of parameters
# ---------------------------------------------------------------------------

_NO_VALUE = object()
_PSEUDO = {
    "AWS::Partition": "aws",
    "AWS::Region": "us-east-1",
    "AWS::AccountId": "123456789012",
    "AWS::StackName": "stack",
    "AWS::URLSuffix": "amazonaws.com",
}


def _resolve(template: dict[str, Any], node: Any, params: dict[str, Any]) -> Any:
    """``node`` with the intrinsic functions this template uses evaluated for ``params``.

    ``params`` overrides the parameters' defaults. A resource reference
    becomes ``<Name>`` / ``<Name.Attr>``; ``AWS::NoValue`` drops the key or
    list entry, as CloudFormation does.
    """
    values = {name: p.get("Default") for name, p in template["Parameters"].items()}
    values.update(params)

    def ref(name: str) -> Any:
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name in _PSEUDO:
            return _PSEUDO[name]
        if name in values:
            return values[name]
        assert name in template["Resources"], name
        return f"<{name}>"

    def condition(name: str) -> bool:
        return bool(walk(template["Conditions"][name]))

    def walk(value: Any) -> Any:
        if isinstance(value, list):
            return [v for v in (walk(v) for v in value) if v is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return ref(arg)
            if key == "Fn::Sub":
                return re.sub(
                    r"\$\{([^}]+)\}",
                    lambda m: str(ref(m.group(1)) if "." not in m.group(1) else f"<{m.group(1)}>"),
                    arg,
                )
            if key == "Fn::GetAtt":
                return f"<{'.'.join(arg)}>"
            if key == "Fn::If":
                return walk(arg[1] if condition(arg[0]) else arg[2])
            if key == "Fn::Equals":
                return walk(arg[0]) == walk(arg[1])
            if key == "Fn::Not":
                return not walk(arg[0])
            if key == "Condition":
                return condition(arg)
        return {k: v for k, v in ((k, walk(v)) for k, v in value.items()) if v is not _NO_VALUE}

    return walk(node)


def _policy(template: dict[str, Any], **params: Any) -> list[dict[str, Any]]:
    """The role's statements as deployed with ``params`` (all intrinsics resolved)."""
    role_name = _function(template)["Properties"]["Role"]["Fn::GetAtt"][0]
    policies = _resolve(template, template["Resources"][role_name]["Properties"]["Policies"], params)
    return [s for policy in policies for s in policy["PolicyDocument"]["Statement"]]


def _matches(pattern: str, value: str) -> bool:
    """IAM wildcard match (``*`` any run, ``?`` one character)."""
    return (
        re.fullmatch(
            ".*".join(".".join(map(re.escape, p.split("?"))) for p in pattern.split("*")), value, re.S
        )
        is not None
    )


def _allowed(
    statements: list[dict[str, Any]], action: str, resource: str, context: dict[str, str] | None = None
) -> bool:
    """Whether an Allow statement grants ``action`` on ``resource`` with the request ``context``.

    Conditions: ``StringEquals``/``StringLike`` and their ``IfExists``
    forms; a key the request does not carry fails the plain forms and
    passes the ``IfExists`` ones, as in IAM.
    """
    context = context or {}
    for s in statements:
        if s["Effect"] != "Allow":
            continue
        if not any(_matches(a.lower(), action.lower()) for a in _as_list(s["Action"])):
            continue
        if not any(_matches(r, resource) for r in _as_list(s["Resource"])):
            continue
        ok = True
        for operator, tests in s.get("Condition", {}).items():
            if_exists = operator.endswith("IfExists")
            base = operator.removesuffix("IfExists")
            assert base in ("StringEquals", "StringLike"), operator
            for key, wanted in tests.items():
                if key not in context:
                    ok &= if_exists
                    continue
                compare = (lambda w, v: w == v) if base == "StringEquals" else _matches
                ok &= any(compare(w, context[key]) for w in _as_list(wanted))
        if ok:
            return True
    return False


_ACCESS_DENIED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
)


class _PolicyProxy:
    """A reverse proxy on 127.0.0.1 in front of the local S3 that answers as S3
    would to a caller holding ``policy`` (resolved IAM statements).

    A request the policy does not allow gets 403 ``AccessDenied`` and is not
    forwarded; a request for a missing key gets S3's 404 only if the policy
    also allows listing the bucket (no ``s3:prefix`` in that check), else 403.
    ``buckets`` are the buckets the policy is about; requests to any other
    bucket are forwarded as they are. ``requests`` records ``(method, path,
    query, status sent back)`` of each request, in order.
    """

    def __init__(self, upstream: str, policy: list[dict[str, Any]], buckets: tuple[str, ...]) -> None:
        import http.client
        import http.server
        import threading
        from urllib.parse import parse_qs, urlsplit

        self.requests: list[tuple[str, str, dict[str, list[str]], int]] = []
        target = urlsplit(upstream)
        proxy = self

        def allowed(checks: list[tuple[str, str, dict[str, str]]]) -> bool:
            return all(_allowed(policy, action, resource, context) for action, resource, context in checks)

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _answer(
                self, status: int, headers: list[tuple[str, str]], data: bytes, length: str | None
            ) -> None:
                self.send_response(status)
                for k, v in headers:
                    if k.lower() not in (
                        "transfer-encoding",
                        "connection",
                        "content-length",
                        "server",
                        "date",
                    ):
                        self.send_header(k, v)
                self.send_header("Content-Length", length or str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                url = urlsplit(self.path)
                query = parse_qs(url.query, keep_blank_values=True)
                bucket = url.path.lstrip("/").partition("/")[0]
                governed = bucket in buckets
                if governed and not allowed(_iam_checks(self.command, url.path, query)):
                    proxy.requests.append((self.command, url.path, query, 403))
                    self._answer(403, [("Content-Type", "application/xml")], _ACCESS_DENIED, None)
                    return
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                headers["Host"] = target.netloc
                conn.request(self.command, self.path, body=body, headers=headers)
                answer = conn.getresponse()
                data = answer.read()
                conn.close()
                status = answer.status
                if (
                    governed
                    and status == 404
                    and not allowed([("s3:ListBucket", f"arn:aws:s3:::{bucket}", {})])
                ):
                    proxy.requests.append((self.command, url.path, query, 403))
                    self._answer(403, [("Content-Type", "application/xml")], _ACCESS_DENIED, None)
                    return
                proxy.requests.append((self.command, url.path, query, status))
                # a HEAD answer's length is the object's, not the empty body's
                head_length = answer.getheader("Content-Length") if self.command == "HEAD" else None
                self._answer(status, answer.getheaders(), data, head_length)

            do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _forward

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _iam_checks(method: str, path: str, query: dict[str, list[str]]) -> list[tuple[str, str, dict[str, str]]]:
    """The IAM checks S3 makes for one path-style request: ``(action, resource, context)``."""
    from urllib.parse import unquote

    bucket, _, key = path.lstrip("/").partition("/")
    bucket_arn = f"arn:aws:s3:::{bucket}"
    if not key:
        if method == "GET" and ("list-type" in query or "prefix" in query or not query):
            context = {"s3:prefix": query["prefix"][0]} if "prefix" in query else {}
            return [("s3:ListBucket", bucket_arn, context)]
        if method == "HEAD":
            return [("s3:ListBucket", bucket_arn, {})]
        raise AssertionError(f"an S3 request the policy test does not know: {method} {path} {query}")
    action = {
        "GET": "s3:GetObject",
        "HEAD": "s3:GetObject",
        "PUT": "s3:PutObject",
        "DELETE": "s3:DeleteObject",
        "POST": "s3:PutObject",
    }[method]
    return [(action, f"{bucket_arn}/{unquote(key)}", {})]


def _sqs_event(bucket: str, key: str, kind: str) -> dict[str, Any]:
    notification = {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": "us-east-1",
                "eventTime": "2024-06-01T10:15:30.512Z",
                "eventName": "ObjectCreated:Put" if kind == "created" else "ObjectRemoved:Delete",
                "s3": {"bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"}, "object": {"key": key}},
            }
        ]
    }
    return {
        "Records": [
            {
                "messageId": f"00000000-0000-4000-8000-00000000000{1 if kind == 'created' else 2}",
                "receiptHandle": "r",
                "body": json.dumps(notification),
                "attributes": {},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
                "awsRegion": "us-east-1",
            }
        ]
    }


def test_first_registration_into_an_empty_catalog_is_allowed_by_the_policy(
    template: dict[str, Any],
    s3_server: S3Server,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """The Lambda entry, holding only the template's policy, registers into an empty catalog.

    S3 is reached through a proxy that answers as S3 does to a caller with
    the resolved policy: the store first GETs catalog.json/collection.json,
    which do not exist yet, and S3 answers 404 there only if ListBucket is
    granted without an s3:prefix condition (a prefix-conditioned grant gives
    403, and the first write failed with "access denied"). A removal then
    works too.
    """

    data_bucket, catalog_bucket = s3_server.new_bucket(), s3_server.new_bucket()
    product = write_utm(tmp_path)
    key = f"products/ndvi/{product.name}"
    s3_server.client().put_object(Bucket=data_bucket, Key=key, Body=product.read_bytes())
    params = {
        "DataBucket": data_bucket,
        "DataPrefix": "products/",
        "CatalogBucket": catalog_bucket,
        "CatalogPrefix": "stac",
        "CollectionId": "ndvi",
    }
    env = _resolve(template, _function(template)["Properties"]["Environment"]["Variables"], params)
    proxy = _PolicyProxy(s3_server.endpoint_url, _policy(template, **params), (data_bucket, catalog_bucket))
    try:
        for name, value in env.items():
            monkeypatch.setenv(name, str(value))
        options = {
            **s3_server.storage_options,
            "client_kwargs": {
                **s3_server.storage_options["client_kwargs"],
                "endpoint_url": proxy.endpoint_url,
            },
        }
        monkeypatch.setenv("STAC_STORAGE_OPTIONS", json.dumps(options))
        handler = _load_entry().handler
        created = handler(_sqs_event(data_bucket, key, "created"), _Context())
        s3_server.client().delete_object(Bucket=data_bucket, Key=key)
        removed = handler(_sqs_event(data_bucket, key, "removed"), _Context())
    finally:
        proxy.close()

    denied = [r for r in proxy.requests if r[3] == 403]
    assert not denied, f"requests the template's role may not make: {denied}\n{created}"
    assert [r["id"] for r in created["registered"]] == [product.stem], created
    assert created["batchItemFailures"] == []
    assert removed["batchItemFailures"] == [] and len(removed["removed"]) == 1, removed
    # the premise: the first registration did read documents that did not exist yet
    assert ("GET", f"/{catalog_bucket}/stac/catalog.json", {}, 404) in proxy.requests
    client = s3_server.client()
    collection = json.loads(
        client.get_object(Bucket=catalog_bucket, Key="stac/ndvi/collection.json")["Body"].read()
    )
    assert not [link for link in collection["links"] if link["rel"] == "item"]


def test_policy_grants_nothing_outside_the_two_prefixes(template: dict[str, Any]) -> None:
    params = {
        "DataBucket": "data",
        "DataPrefix": "products/",
        "CatalogBucket": "cat",
        "CatalogPrefix": "stac",
        "CollectionId": "ndvi",
    }
    policy = _policy(template, **params)
    assert _allowed(policy, "s3:GetObject", "arn:aws:s3:::data/products/a.tif")
    assert not _allowed(policy, "s3:GetObject", "arn:aws:s3:::data/private/a.tif")
    assert not _allowed(policy, "s3:PutObject", "arn:aws:s3:::data/products/a.tif")
    assert _allowed(policy, "s3:PutObject", "arn:aws:s3:::cat/stac/catalog.json")
    assert not _allowed(policy, "s3:PutObject", "arn:aws:s3:::cat/stacked/catalog.json")
    assert not _allowed(policy, "s3:GetObject", "arn:aws:s3:::cat/other/x.json")
    assert not _allowed(policy, "s3:ListBucket", "arn:aws:s3:::elsewhere")
    assert not any(a.startswith("kms:") for s in policy for a in _as_list(s["Action"]))


def test_kms_key_parameters_grant_decrypt_on_data_and_encrypt_on_catalog(template: dict[str, Any]) -> None:
    """SSE-KMS buckets: kms:Decrypt on the data key, GenerateDataKey/Encrypt on the catalog key, via S3 only."""
    data_key = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
    catalog_key = "arn:aws:kms:us-east-1:123456789012:key/66666666-7777-8888-9999-000000000000"
    via_s3 = {"kms:ViaService": "s3.us-east-1.amazonaws.com"}
    base = {"DataBucket": "data", "CatalogBucket": "cat", "CollectionId": "ndvi"}
    for pattern_of in ("DataKmsKeyArn", "CatalogKmsKeyArn"):
        pattern = re.compile(template["Parameters"][pattern_of]["AllowedPattern"])
        assert template["Parameters"][pattern_of]["Default"] == ""
        assert pattern.fullmatch("") and pattern.fullmatch(data_key)
        assert not pattern.fullmatch("*") and not pattern.fullmatch("alias/aws/s3")

    data_only = _policy(template, **base, DataKmsKeyArn=data_key)
    assert _allowed(data_only, "kms:Decrypt", data_key, via_s3)
    assert not _allowed(data_only, "kms:Decrypt", data_key, {"kms:ViaService": "ec2.us-east-1.amazonaws.com"})
    assert not _allowed(data_only, "kms:GenerateDataKey", data_key, via_s3)
    assert not _allowed(data_only, "kms:Decrypt", catalog_key, via_s3)

    catalog_only = _policy(template, **base, CatalogKmsKeyArn=catalog_key)
    for action in ("kms:Decrypt", "kms:GenerateDataKey", "kms:Encrypt"):
        assert _allowed(catalog_only, action, catalog_key, via_s3), action
        assert not _allowed(catalog_only, action, catalog_key), f"{action} without kms:ViaService"
    assert not _allowed(catalog_only, "kms:Decrypt", data_key, via_s3)

    # a data bucket created by the stack is encrypted with the given key
    bucket = _resolve(
        template, template["Resources"]["DataBucketResource"], {**base, "DataKmsKeyArn": data_key}
    )
    (rule,) = bucket["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": data_key}
    bucket = _resolve(template, template["Resources"]["DataBucketResource"], base)
    (rule,) = bucket["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}


def test_dead_letter_queue_alarm_fires_on_the_first_parked_message(template: dict[str, Any]) -> None:
    queues = _resources(template, "AWS::SQS::Queue")
    (main,) = [q for q in queues.values() if "RedrivePolicy" in q["Properties"]]
    dlq = main["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
    _, alarm = _one(template, "AWS::CloudWatch::Alarm")
    props = alarm["Properties"]
    assert (props["Namespace"], props["MetricName"]) == ("AWS/SQS", "ApproximateNumberOfMessagesVisible")
    assert props["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [dlq, "QueueName"]}}]
    assert props["ComparisonOperator"] == "GreaterThanThreshold" and props["Threshold"] == 0
    assert props["Statistic"] == "Maximum" and props["TreatMissingData"] == "notBreaching"
    topic = "arn:aws:sns:us-east-1:123456789012:stac-alerts"
    with_topic = _resolve(template, props, {"AlarmTopicArn": topic})
    assert with_topic["AlarmActions"] == [topic] and with_topic["OKActions"] == [topic]
    without = _resolve(template, props, {})
    assert "AlarmActions" not in without and "OKActions" not in without


def test_lambda_concurrency_is_bounded(template: dict[str, Any]) -> None:
    """Reserved concurrency caps the writers; the SQS source never polls for more than that."""
    props = _function(template)["Properties"]
    assert props["ReservedConcurrentExecutions"] == {"Ref": "MaxConcurrency"}
    (sqs,) = [e["Properties"] for e in props["Events"].values() if e["Type"] == "SQS"]
    assert sqs["ScalingConfig"]["MaximumConcurrency"] == {"Ref": "MaxConcurrency"}
    param = template["Parameters"]["MaxConcurrency"]
    assert param["Type"] == "Number"
    # SQS event sources take a maximum concurrency of at least 2
    assert 2 <= param["MinValue"] <= param["Default"] <= param["MaxValue"] <= 1000


def test_queues_survive_stack_deletion_with_their_messages(template: dict[str, Any]) -> None:
    queues = _resources(template, "AWS::SQS::Queue")
    assert len(queues) == 2
    for name, queue in queues.items():
        assert queue.get("DeletionPolicy") == "Retain", name
        assert queue.get("UpdateReplacePolicy") == "Retain", name


# ---------------------------------------------------------------------------
# the Lambda entry point
# ---------------------------------------------------------------------------


def _load_entry() -> ModuleType:
    """Import deploy/lambda_handler.py the way the Lambda runtime does (by file)."""
    spec = importlib.util.spec_from_file_location("lambda_handler", DEPLOY / "lambda_handler.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_entry_point_is_importable_and_callable() -> None:
    module = _load_entry()
    assert callable(module.handler)
    assert list(inspect.signature(module.handler).parameters)[:2] == ["event", "context"]


def test_entry_point_needs_its_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    from producer.errors import InputError

    monkeypatch.delenv("STAC_CATALOG", raising=False)
    monkeypatch.setenv("STAC_COLLECTION", "ndvi")
    with pytest.raises(InputError, match="STAC_CATALOG"):
        _load_entry().handler(json.loads((EVENTS / "s3_test_event.json").read_text()), None)


def test_entry_point_refuses_an_unknown_log_level_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """LOG_LEVEL=verbose crashed every invocation with logging's "Unknown level: 'VERBOSE'"."""
    from producer.errors import InputError

    monkeypatch.setenv("STAC_CATALOG", "s3://bucket/stac")
    monkeypatch.setenv("STAC_COLLECTION", "ndvi")
    monkeypatch.setenv("LOG_LEVEL", "verbose")
    with pytest.raises(InputError, match=r"LOG_LEVEL 'verbose'.*DEBUG, INFO, WARNING, ERROR"):
        _load_entry().handler(json.loads((EVENTS / "s3_test_event.json").read_text()), None)


@pytest.fixture
def lambda_env(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """A fresh bucket, and the function's environment as template.yaml sets it.

    STAC_STORAGE_OPTIONS names the local endpoint explicitly: without storage
    options the api lets GDAL read s3:// itself, and GDAL ignores
    AWS_ENDPOINT_URL (it would look up the real AWS host).
    """
    s3 = s3_server._replace(bucket=s3_server.new_bucket())
    monkeypatch.setenv("STAC_CATALOG", f"s3://{s3.bucket}/stac")
    monkeypatch.setenv("STAC_COLLECTION", "ndvi")
    monkeypatch.setenv("STAC_PREFIXES", "products/")
    monkeypatch.setenv("STAC_SUFFIXES", ".tif,.tiff,.nc")
    monkeypatch.setenv("STAC_STORAGE_OPTIONS", json.dumps(s3.storage_options))
    return s3


class _Context:
    aws_request_id = "c6af9ac6-7b61-11e6-9a41-93e812345678"
    function_name = "stack-register"


def test_entry_point_sqs_batch_end_to_end(lambda_env: S3Server, tmp_path: Path) -> None:

    s3 = lambda_env
    s3.client().put_object(
        Bucket=s3.bucket, Key="products/ndvi/S2_20240608_T31UFQ.tif", Body=write_utm(tmp_path).read_bytes()
    )
    payload = json.loads(
        (EVENTS / "sqs_malformed.json").read_text().replace("amzn-s3-demo-bucket", s3.bucket)
    )
    result = _load_entry().handler(payload, _Context())
    assert [r["id"] for r in result["registered"]] == ["S2_20240608_T31UFQ"]
    assert result["batchItemFailures"] == [{"itemIdentifier": "7e6d5c4b-3a29-4180-9f7e-6d5c4b3a2918"}]
    json.dumps(result)  # Lambda serialises the response as JSON
    body = s3.client().get_object(Bucket=s3.bucket, Key="stac/ndvi/collection.json")["Body"].read()
    assert any(link["rel"] == "item" for link in json.loads(body)["links"])


def test_entry_point_raises_for_failures_outside_sqs(lambda_env: S3Server) -> None:
    """A direct S3 invocation cannot report per message: it must fail so Lambda retries."""
    s3 = lambda_env
    module = _load_entry()
    s3.client().put_object(Bucket=s3.bucket, Key="products/ndvi/S2_20240601_T31UFQ.tif", Body=b"not a raster")
    payload = json.loads((EVENTS / "s3_put.json").read_text().replace("amzn-s3-demo-bucket", s3.bucket))
    with pytest.raises(module.EventHandlingError, match="S2_20240601_T31UFQ"):
        module.handler(payload, _Context())
    ignored = json.loads((EVENTS / "s3_test_event.json").read_text())
    assert module.handler(ignored, _Context())["failed"] == []


# ---------------------------------------------------------------------------
# the documents the deployment files point at
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["prefect.yaml", "template.yaml", "README.md"])
def test_deploy_files_point_only_at_docs_that_exist(name: str) -> None:
    """deploy/prefect.yaml sent readers to docs/PREFECT.md, which did not exist."""
    text = (DEPLOY / name).read_text()
    pointed = set(re.findall(r"\b((?:docs|deploy)/[\w./-]+\.(?:md|yaml|py))\b", text))
    missing = sorted(p for p in pointed if not (ROOT / p).is_file())
    assert not missing, f"deploy/{name} points at {missing}"
    if name == "prefect.yaml":
        assert "docs/PREFECT.md" in pointed


# ---------------------------------------------------------------------------
# the image of the flow runs on an ECS/Kubernetes work pool (read as docker would)
# ---------------------------------------------------------------------------


def test_readme_work_pool_image_can_run_the_flows() -> None:
    """README's "Scaling the backfill out" named deploy/Dockerfile for ECS or
    Kubernetes work pools: the Lambda image, with no Prefect, no flows/ (the
    dockerignore drops it) and no /opt/stac-producer for prefect.yaml's pull
    step. The image it names must be able to run the deployments."""
    readme = (ROOT / "README.md").read_text()
    named = re.search(r"On an ECS or Kubernetes work pool.*?`(deploy/[\w.-]*Dockerfile)`", readme, re.S)
    assert named, "README: no Dockerfile named for ECS/Kubernetes work pools"
    path = ROOT / named.group(1)
    instructions = _dockerfile(path)
    base = _one_instruction(instructions, "FROM").args
    assert "lambda" not in base, f"{path.name}: {base} is a Lambda base image"
    assert not any(i.name in ("CMD", "ENTRYPOINT") and "lambda" in i.args for i in instructions)
    version = re.fullmatch(r"python:(\d+\.\d+)(?:-[\w.]+)?", base)
    assert version, base
    requires = SpecifierSet(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    )
    assert version.group(1) in requires, base

    # where the flow runs start: prefect.yaml's pull step, the image's code
    pull = yaml.safe_load((DEPLOY / "prefect.yaml").read_text())["pull"]
    (workdir,) = [
        step["prefect.deployments.steps.set_working_directory"]["directory"]
        for step in pull
        if "prefect.deployments.steps.set_working_directory" in step
    ]
    copied: dict[str, str] = {}  # source -> destination folder in the image
    for i in instructions:
        if i.name == "COPY":
            *sources, destination = i.args.split()
            for source in sources:
                copied[source.rstrip("/")] = posixpath.normpath(posixpath.join(i.workdir, destination))
    assert copied.get("flows") == f"{workdir}/flows", copied
    assert copied.get("producer") == f"{workdir}/producer", copied
    for deployment in yaml.safe_load((DEPLOY / "prefect.yaml").read_text())["deployments"]:
        assert (ROOT / deployment["entrypoint"].partition(":")[0]).is_file()  # copied with flows/

    # the build context the Dockerfile's own .dockerignore sends holds what it copies
    ignore = [
        line.strip()
        for line in path.with_name(path.name + ".dockerignore").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    for rel in ("flows/backfill.py", "producer/api.py", "pyproject.toml", "constraints.txt"):
        assert not _dockerignore_excludes(ignore, rel), rel
    for rel in (".venv/bin/python", "tests/conftest.py"):
        assert _dockerignore_excludes(ignore, rel), rel

    # pip install of this package, pinned by constraints.txt, with Prefect and prefect-dask
    (run,) = [i for i in instructions if i.name == "RUN" and "pip install" in i.args]
    pip = shlex.split(run.args.split("&&")[0])
    assert pip[:2] == ["pip", "install"], pip
    flags = pip[2:]
    assert any(
        flag in ("--constraint", "-c") and value == "constraints.txt" for flag, value in zip(flags, flags[1:])
    ), pip
    assert copied.get("constraints.txt") == workdir and run.workdir == workdir
    (target,) = [t for t in flags if t.startswith(".")]
    match = re.fullmatch(r"\.\[([\w,\s-]*)\]", target)
    assert match, target
    extras = {canonicalize_name(e) for e in match.group(1).split(",") if e.strip()}
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert extras <= set(pyproject["optional-dependencies"]), extras
    assert {"prefect", "prefect-dask", "s3fs"} <= _install_closure(pyproject["name"], extras)


def test_every_template_parameter_is_documented_in_deploy_readme(template: dict[str, Any]) -> None:
    """deploy/README.md is where an operator looks up what to pass to
    ``sam deploy``: Suffixes, BatchSize and MaxReceiveCount were in no table."""
    readme = (DEPLOY / "README.md").read_text()
    missing = [
        name for name in template["Parameters"] if f"`{name}`" not in readme and f"{name}=" not in readme
    ]
    assert not missing, f"deploy/README.md does not document the template parameter(s) {missing}"
