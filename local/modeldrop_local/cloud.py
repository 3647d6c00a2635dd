"""The local cloud as one object: edge + local SageMaker + stack + functions host + REST front.

State: with a state dir, moto's backends (objects, tables, executions, keys) are pickled there on stop
and restored on start, and the local SageMaker keeps its own endpoints under state_dir/sagemaker.
"""

from __future__ import annotations

import importlib
import logging
import pickle
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from modeldrop_local.credentials import client_environment, use_fake_credentials_if_none
from modeldrop_local.edge import Edge
from modeldrop_local.functions_host import FunctionsForkServer, FunctionsHost
from modeldrop_local.functions_host.emf import EmfSink
from modeldrop_local.rest_front import RestFront
from modeldrop_local.stack import (
    DEFAULT_REGION,
    DEFAULT_STACK_NAME,
    LocalStack,
    build_stack,
    load_template,
)

logger = logging.getLogger(__name__)
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TEMPLATE = REPO_ROOT / "template.yaml"
# moto services whose backends hold the stack's state (the modules' `<service>_backends` dicts).
# Step Functions is not among them (its engine holds locks and threads): the state machine is created
# again from the template on start, like every resource that is missing.
_PERSISTED_SERVICES = {
    "s3": "moto.s3.models:s3_backends",
    "dynamodb": "moto.dynamodb.models:dynamodb_backends",
    "iam": "moto.iam.models:iam_backends",
    "apigateway": "moto.apigateway.models:apigateway_backends",
    "logs": "moto.logs.models:logs_backends",
    # The Model Registry's groups and packages (model_registry.py); endpoints live in the local SageMaker.
    "sagemaker": "moto.sagemaker.models:sagemaker_backends",
}
_MOTO_STATE_FILE = "moto-state.pickle"
# Template parameters the local cloud sets unless the caller does (and only if the template has them).
# The deploy state machine waits PollIntervalSeconds between two DescribeEndpoint calls: 30 s suits
# SageMaker on AWS (minutes per endpoint), while a local endpoint is InService in about a second.
LOCAL_PARAMETER_DEFAULTS = {"PollIntervalSeconds": "1"}


def free_port() -> int:
    """A free TCP port on loopback, picked by the kernel."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _backend_dict(path: str) -> Any:
    module_name, attribute = path.split(":")
    return getattr(importlib.import_module(module_name), attribute)


def save_moto_state(state_dir: Path) -> list[str]:
    """Pickle each persisted moto service's backends; returns the services that could not be saved."""
    snapshot: dict[str, Any] = {}
    unsaved = []
    for service, path in _PERSISTED_SERVICES.items():
        backends = _backend_dict(path)
        try:
            data = {
                account: {region: backends[account][region] for region in regions}
                for account, regions in backends.items()
            }
            pickle.dumps(data)
            snapshot[service] = data
        except (pickle.PicklingError, TypeError, AttributeError) as error:
            logger.warning("moto %s state cannot be saved: %s", service, error)
            unsaved.append(service)
    state_dir.mkdir(parents=True, exist_ok=True)
    temporary = state_dir / (_MOTO_STATE_FILE + ".tmp")
    temporary.write_bytes(pickle.dumps(snapshot))
    temporary.replace(state_dir / _MOTO_STATE_FILE)
    return unsaved


def restore_moto_state(state_dir: Path) -> bool:
    """Load the pickled backends back into moto; False when there is nothing to restore."""
    state_file = state_dir / _MOTO_STATE_FILE
    if not state_file.is_file():
        return False
    snapshot = pickle.loads(state_file.read_bytes())
    for service, data in snapshot.items():
        backends = _backend_dict(_PERSISTED_SERVICES[service])
        for account, regions in data.items():
            for region, backend in regions.items():
                backends[account][region] = backend
                if service == "s3":
                    _register_buckets(backends, backend, account)
    return True


def _register_buckets(s3_backends: Any, backend: Any, account: str) -> None:
    """moto keeps a process-wide name → account index of buckets beside the backends (moto/s3/models.py
    `s3_backends.bucket_accounts`, written when a FakeBucket is made). A restored bucket missing from it
    is taken for a new one by CreateBucket, which the stack sends on every start, and every object in
    it was lost at each restart."""
    for name, bucket in backend.buckets.items():
        s3_backends.bucket_accounts[name] = (bucket.partition, account)


def resume_deployments(stack: LocalStack, edge_url: str, region: str) -> list[str]:
    """Start again the deploy executions of the deployments a restored state has in flight.

    Step Functions executions are not saved (see _PERSISTED_SERVICES), so a cloud stopped while a
    deployment was Queued or Deploying would leave its record there for good. What is in flight and how
    it is followed is the application's: its layer's one hook (modeldrop.rollout.resume_in_flight) gets
    OnUpload's environment and clients of this cloud. Returns the deployment ids resumed (none for a
    template without modeldrop's OnUpload function).
    """
    on_upload = next((f for f in stack.functions.values() if f.logical_id == "OnUploadFunction"), None)
    if on_upload is None:
        return []
    from modeldrop.rollout import resume_in_flight

    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=region)
    return resume_in_flight(
        on_upload.environment,
        dynamodb=session.resource("dynamodb", endpoint_url=edge_url),
        stepfunctions=session.client("stepfunctions", endpoint_url=edge_url),
    )


@dataclass
class LocalCloud:
    """Start with `start()` (or as a context manager), stop with `stop()`: no thread or process is left."""

    template_path: Path = DEFAULT_TEMPLATE
    edge_port: int = 4566
    api_port: int = 3000
    state_dir: Path | None = None
    parameters: Mapping[str, str] = field(default_factory=dict)
    stack_name: str = DEFAULT_STACK_NAME
    region: str = DEFAULT_REGION
    sagemaker_idle_timeout_s: float = 300.0
    function_log_dir: Path | None = None  # None: functions log to this console
    condensed_function_logs: bool = False  # on the console: one readable line per record, no metrics
    spare_function_workers: int = 1  # per function, started ahead of demand (see FunctionsHost)
    stack: LocalStack | None = None
    edge: Edge | None = None
    functions: FunctionsHost | None = None
    rest: RestFront | None = None
    _sagemaker: Any = None
    _restore_credentials: Any = None
    _fork_server: FunctionsForkServer | None = None
    # The functions' EMF records → CloudWatch metrics on the edge (functions_host/emf.py).
    metrics_sink: EmfSink | None = None
    restored: bool = False

    @property
    def edge_url(self) -> str:
        return f"http://127.0.0.1:{self.edge_port}"

    @property
    def api_url(self) -> str:
        return self.stack.outputs.get("ApiUrl", "") if self.stack else ""

    def environment(self) -> dict[str, str]:
        """What a client (and every function) needs to reach this cloud."""
        return client_environment(self.edge_url, self.region)

    def effective_parameters(self) -> dict[str, str]:
        """The caller's parameters, plus the local defaults for those the template has and they left out."""
        declared = load_template(self.template_path).get("Parameters", {})
        defaults = {key: value for key, value in LOCAL_PARAMETER_DEFAULTS.items() if key in declared}
        return {**defaults, **self.parameters}

    def start(self) -> LocalCloud:
        try:
            self._start()
        except BaseException:
            self.stop(save=False)
            raise
        return self

    def _start(self) -> None:
        # The cloud's own clients (the local SageMaker's S3 download, its log shipper) need some
        # credentials to sign with; a user who configured none still gets a working cloud.
        self._restore_credentials = use_fake_credentials_if_none()
        # The functions' fork server imports their libraries while the edge and the stack start.
        self._fork_server = FunctionsForkServer(self.environment())
        sagemaker_app = self._sagemaker_app()
        self.edge = Edge(self.edge_port, sagemaker_app)
        self.edge.start()
        # moto's backends are process-wide: start from a clean slate (or the saved state), never from
        # what an earlier cloud in this process left. One local cloud per process at a time.
        from moto.moto_api._internal.models import moto_api_backend

        moto_api_backend.reset()
        if self.state_dir is not None:
            self.restored = restore_moto_state(self.state_dir)
        self.stack = build_stack(
            self.template_path,
            edge_url=self.edge_url,
            api_url=f"http://127.0.0.1:{self.api_port}",
            stack_name=self.stack_name,
            region=self.region,
            parameters=self.effective_parameters(),
        )
        cloudwatch = boto3.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=self.region
        ).client("cloudwatch", endpoint_url=self.edge_url)
        self.metrics_sink = EmfSink(cloudwatch.put_metric_data)
        self.functions = FunctionsHost(
            self.stack.functions,
            self.environment(),
            log_dir=self.function_log_dir,
            condensed_console=self.condensed_function_logs,
            spare_workers=self.spare_function_workers,
            fork_server=self._fork_server,
            metrics_sink=self.metrics_sink,
        )
        self._fork_server = None  # the functions host owns it now
        self.functions.start_spares()
        # Ready means warm: the first upload after start does not wait for a cold start.
        self.functions.await_spares()
        self.edge.attach(self.stack, self.functions)
        if self.stack.rest_api is not None:
            self.rest = RestFront(self.api_port, self.stack.rest_api, self.functions.invoke)
            self.rest.start()
        if self.restored:
            resumed = resume_deployments(self.stack, self.edge_url, self.region)
            if resumed:
                logger.warning("resumed the deploy executions of %s", ", ".join(resumed))

    def _sagemaker_app(self) -> Any:
        from modeldrop_local.sagemaker import LocalSageMakerSettings, create_app

        state_dir = (self.state_dir / "sagemaker") if self.state_dir else None
        if state_dir is None:
            import tempfile

            state_dir = Path(tempfile.mkdtemp(prefix="modeldrop-sagemaker-"))
        settings = LocalSageMakerSettings(
            state_dir=state_dir,
            s3_endpoint_url=self.edge_url,
            region=self.region,
            idle_timeout_s=self.sagemaker_idle_timeout_s,
            port=self.edge_port,
            # Endpoint logs go to CloudWatch Logs on the edge, where `modeldrop logs` reads them.
            cloudwatch_logs_endpoint_url=self.edge_url,
        )
        self._sagemaker = create_app(settings)
        return self._sagemaker

    def stop(self, save: bool = True) -> None:
        if self.rest is not None:
            self.rest.stop()
            self.rest = None
        if self.functions is not None:
            self.functions.close()
            self.functions = None
        if self._fork_server is not None:  # the start failed before the functions host took it
            self._fork_server.close()
            self._fork_server = None
        if self.metrics_sink is not None:
            self.metrics_sink.close()
            self.metrics_sink = None
        if self._sagemaker is not None:
            self._sagemaker.close()
            self._sagemaker = None
        if save and self.state_dir is not None and self.stack is not None:
            save_moto_state(self.state_dir)
        if self.edge is not None:
            self.edge.stop()
            self.edge = None
        if self._restore_credentials is not None:
            self._restore_credentials()
            self._restore_credentials = None

    def __enter__(self) -> LocalCloud:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
