"""The warm container's cache of servable model records (modeldrop.api.record_cache) on the invocation
path: it saves the GetItem while a model serves, and never keeps a model the table no longer has."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.stub import Stubber
from modeldrop.api.dependencies import ApiDependencies, build_dependencies, default_dependencies
from modeldrop.api.logic import is_servable
from modeldrop.api.record_cache import CachedModelRecords
from modeldrop.api.routes import create_resolver
from modeldrop.api.runtime import SageMakerRuntime
from modeldrop.api.settings import ApiSettings
from modeldrop.deployments_table import DeploymentRecords

from tests.unit.api.support import TABLE_NAME, assert_error, put_deployment, put_model, streaming
from tests.utils import load_event

TTL_S = 5.0
REQUEST_ID = "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"


class Clock:
    """A hand-moved clock: the TTL is a rule about time, tested without waiting for it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingReader(DeploymentRecords):
    """The real DynamoDB reader, counting the GetItem calls that reach the table."""

    def __init__(self, table: Any) -> None:
        super().__init__(table)
        self.get_item_calls = 0

    def get_model(self, name: str) -> Any:
        self.get_item_calls += 1
        return super().get_model(name)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def reader(table: Any) -> CountingReader:
    return CountingReader(table)


@pytest.fixture
def cached_api(reader: CountingReader, runtime_client: Any, clock: Clock) -> Iterator[APIGatewayRestResolver]:
    records = CachedModelRecords(reader, is_servable, ttl_s=TTL_S, clock=clock)
    dependencies = ApiDependencies(
        records=reader, runtime=SageMakerRuntime(runtime_client), serving_records=records
    )
    yield create_resolver(lambda: dependencies)


def _answer(sagemaker: Stubber, body: bytes = b"[0]") -> None:
    sagemaker.add_response("invoke_endpoint", {"Body": streaming(body), "ContentType": "application/json"})


def _endpoint_gone(sagemaker: Stubber) -> None:
    sagemaker.add_client_error(
        "invoke_endpoint",
        service_error_code="ValidationError",
        service_message="Endpoint modeldrop-iris of account 123456789012 not found.",
        http_status_code=400,
    )


def _delete_model_item(table: Any, name: str) -> None:
    table.delete_item(Key={"pk": f"MODEL#{name}", "sk": "MODEL"})


def test_a_serving_model_is_read_once_per_ttl(
    cached_api: APIGatewayRestResolver,
    reader: CountingReader,
    sagemaker: Stubber,
    table: Any,
    clock: Clock,
    lambda_context: LambdaContext,
) -> None:
    # Given an InService model invoked three times within the TTL
    put_model(table, "iris")
    for _ in range(3):
        _answer(sagemaker)
        assert cached_api.resolve(load_event("api_invoke"), lambda_context)["statusCode"] == 200
    # Then the table was read once
    assert reader.get_item_calls == 1
    # When the TTL has passed, the next invocation reads the table again
    clock.now += TTL_S
    _answer(sagemaker)
    assert cached_api.resolve(load_event("api_invoke"), lambda_context)["statusCode"] == 200
    assert reader.get_item_calls == 2


def test_a_removed_model_is_not_served_past_the_ttl(
    cached_api: APIGatewayRestResolver,
    sagemaker: Stubber,
    table: Any,
    clock: Clock,
    lambda_context: LambdaContext,
) -> None:
    # Given a model served once (its record now cached), then removed from the table
    put_model(table, "iris")
    _answer(sagemaker)
    assert cached_api.resolve(load_event("api_invoke"), lambda_context)["statusCode"] == 200
    _delete_model_item(table, "iris")
    # When the TTL has passed / Then the caller gets the table's answer: 404, and SageMaker is not called
    clock.now += TTL_S + 0.001
    assert_error(
        cached_api.resolve(load_event("api_invoke"), lambda_context), 404, "ModelNotFound", "iris", REQUEST_ID
    )


def test_a_removed_model_whose_endpoint_is_gone_answers_404_at_once(
    cached_api: APIGatewayRestResolver, sagemaker: Stubber, table: Any, lambda_context: LambdaContext
) -> None:
    # Given a cached record of a model that was then removed, with its endpoint, within the TTL
    put_model(table, "iris")
    _answer(sagemaker)
    assert cached_api.resolve(load_event("api_invoke"), lambda_context)["statusCode"] == 200
    _delete_model_item(table, "iris")
    _endpoint_gone(sagemaker)
    # When it is invoked: SageMaker says the endpoint is not found
    response = cached_api.resolve(load_event("api_invoke"), lambda_context)
    # Then the answer is the table's (404), not the stale record's
    assert_error(response, 404, "ModelNotFound", "iris", REQUEST_ID)


def test_an_endpoint_being_replaced_answers_its_status_from_the_table(
    cached_api: APIGatewayRestResolver, sagemaker: Stubber, table: Any, lambda_context: LambdaContext
) -> None:
    # Given a cached InService record, then the pipeline deleting the broken endpoint (status Deleting)
    put_model(table, "iris")
    _answer(sagemaker)
    assert cached_api.resolve(load_event("api_invoke"), lambda_context)["statusCode"] == 200
    put_model(table, "iris", status="Deleting", live_version=None)
    _endpoint_gone(sagemaker)
    # When it is invoked / Then 503 with the status the table has now
    body = assert_error(
        cached_api.resolve(load_event("api_invoke"), lambda_context),
        503,
        "ModelNotInService",
        "iris",
        REQUEST_ID,
    )
    assert "Deleting" in body["message"]


def test_unknown_and_unservable_models_are_read_every_time(
    cached_api: APIGatewayRestResolver,
    reader: CountingReader,
    sagemaker: Stubber,
    table: Any,
    lambda_context: LambdaContext,
) -> None:
    # Given no model: two invocations are two 404s, each read from the table
    for _ in range(2):
        assert_error(
            cached_api.resolve(load_event("api_invoke"), lambda_context),
            404,
            "ModelNotFound",
            "iris",
            REQUEST_ID,
        )
    assert reader.get_item_calls == 2
    # When the model's first deployment is still Creating: 503, still read each time
    put_model(table, "iris", status="Creating", live_version=None)
    put_deployment(table, "iris", 1, status="Deploying")
    assert_error(
        cached_api.resolve(load_event("api_invoke"), lambda_context),
        503,
        "ModelNotInService",
        "iris",
        REQUEST_ID,
    )
    assert reader.get_item_calls == 3
    # Then as soon as the table says InService it is served, without waiting for any TTL
    put_model(table, "iris")
    _answer(sagemaker)
    assert cached_api.resolve(load_event("api_invoke"), lambda_context)["statusCode"] == 200
    assert reader.get_item_calls == 4


def test_reads_shown_to_the_caller_do_not_use_the_cache(
    cached_api: APIGatewayRestResolver, sagemaker: Stubber, table: Any, lambda_context: LambdaContext
) -> None:
    # Given a model invoked (its record cached), then its record changed
    put_model(table, "iris")
    put_deployment(table, "iris", 1)
    _answer(sagemaker)
    assert cached_api.resolve(load_event("api_invoke"), lambda_context)["statusCode"] == 200
    put_model(table, "iris", status="Updating", live_version=1)
    # When GET /models/iris is asked / Then it shows the table's status at once
    response = cached_api.resolve(load_event("api_get_model"), lambda_context)
    assert response["statusCode"] == 200
    assert '"status":"Updating"' in response["body"].replace(" ", "")


def test_ttl_zero_reads_the_table_every_time(reader: CountingReader, table: Any, clock: Clock) -> None:
    put_model(table, "iris")
    records = CachedModelRecords(reader, is_servable, ttl_s=0, clock=clock)
    for _ in range(3):
        assert records.get_model("iris") is not None
    assert reader.get_item_calls == 3


def test_the_cache_belongs_to_the_warm_container(table: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the Api function's environment (the TTL set by the template or left to its default)
    monkeypatch.setenv("DEPLOYMENTS_TABLE", TABLE_NAME)
    monkeypatch.setenv("MODEL_RECORD_CACHE_TTL_SECONDS", "2.5")
    default_dependencies.cache_clear()
    try:
        # When the container builds its dependencies twice (two requests of one warm container)
        first, second = default_dependencies(), default_dependencies()
        # Then both requests share one cache, while a new container (a new build) starts empty
        assert first.serving_records is second.serving_records
        put_model(table, "iris")
        assert first.invocation_records.get_model("iris") is not None
        assert isinstance(first.serving_records, CachedModelRecords)
        assert first.serving_records.is_cached("iris")
        fresh = build_dependencies(ApiSettings.from_env())
        assert isinstance(fresh.serving_records, CachedModelRecords)
        assert not fresh.serving_records.is_cached("iris")
        assert ApiSettings.from_env().record_cache_ttl_s == 2.5
    finally:
        default_dependencies.cache_clear()
