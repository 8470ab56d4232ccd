"""deploy/: the SAM template is valid and least-privilege, the Lambda entry works.

``cfn-lint`` runs on the template as a subprocess (it is a dev dependency; it
never needs the network). The Lambda entry point is imported from its file,
as the container's runtime does, and invoked against the local S3 server.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.s3server import S3Server, s3_server  # noqa: F401  (session fixture)

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
    doc = yaml.load(TEMPLATE.read_text(), Loader=_CfnLoader)  # noqa: S506 - a SafeLoader subclass
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
    role_name = _function(template)["Properties"]["Role"]["Fn::GetAtt"][0]
    role = template["Resources"][role_name]
    assert role["Type"] == "AWS::IAM::Role"
    assert "ManagedPolicyArns" not in role["Properties"]  # nothing broader sneaks in
    out: list[dict[str, Any]] = []
    for policy in role["Properties"]["Policies"]:
        out.extend(policy["PolicyDocument"]["Statement"])
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
    assert {"DataBucket", "DataPrefix", "CatalogBucket", "CatalogPrefix", "CollectionId"} <= set(template["Parameters"])


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


def test_dockerfile_matches_the_handler() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^FROM public\.ecr\.aws/lambda/python:", text, re.M)
    assert re.search(r'^CMD \["lambda_handler\.handler"\]$', text, re.M)
    assert re.search(r"^COPY deploy/lambda_handler\.py \$\{LAMBDA_TASK_ROOT\}/$", text, re.M)
    assert '".[s3]"' in text and "constraints.txt" in text


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
    assert s3_actions["s3:ListBucket"] == {"arn:${AWS::Partition}:s3:::${CatalogBucket}",
                                           "arn:${AWS::Partition}:s3:::${DataBucket}"}
    assert set(s3_actions) == {"s3:PutObject", "s3:DeleteObject", "s3:GetObject", "s3:ListBucket"}

    for s in statements:
        if "s3:ListBucket" in _as_list(s["Action"]):
            prefixes = {_sub(p) for p in _as_list(s["Condition"]["StringLike"]["s3:prefix"])}
            if _sub(s["Resource"]).endswith("${CatalogBucket}"):
                assert prefixes == {"${CatalogPrefix}", "${CatalogPrefix}/*"}
            else:
                assert prefixes == {"${DataPrefix}*"}


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
    assert _sub(statement["Condition"]["ArnLike"]["aws:SourceArn"]) == "arn:${AWS::Partition}:s3:::${DataBucket}"
    assert statement["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}


def test_bucket_notifications_filtered_by_prefix(template: dict[str, Any]) -> None:
    name, bucket = _one(template, "AWS::S3::Bucket")
    assert bucket["Condition"] == "CreateBucket" and bucket["DependsOn"] == "EventQueuePolicy"
    configs = bucket["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
    assert sorted(c["Event"] for c in configs) == ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]
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


@pytest.fixture
def lambda_env(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:  # noqa: F811
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
    from tests.rasters import write_utm

    s3 = lambda_env
    s3.client().put_object(Bucket=s3.bucket, Key="products/ndvi/S2_20240608_T31UFQ.tif",
                           Body=write_utm(tmp_path).read_bytes())
    payload = json.loads((EVENTS / "sqs_malformed.json").read_text().replace("amzn-s3-demo-bucket", s3.bucket))
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
