"""DynamoDB through the edge keeps DynamoDB's item atomicity, which moto alone does not under concurrency."""

from __future__ import annotations

import threading
from typing import Any

from modeldrop_local.cloud import LocalCloud

WRITERS = 6
KEYS = 40


def test_one_conditional_writer_wins_and_no_reader_sees_a_half_written_item(
    cloud: LocalCloud, client: Any
) -> None:
    # Given several writers creating the same items at once with UpdateItem (only if absent), and a reader
    assert cloud.stack is not None
    table = cloud.stack.outputs["TableName"]
    dynamodb = client("dynamodb")
    winners: dict[str, list[int]] = {f"item-{i}": [] for i in range(KEYS)}
    half_written: list[dict[str, Any]] = []
    start = threading.Barrier(WRITERS + 1)
    done = threading.Event()

    def write(writer: int) -> None:
        start.wait()
        for key in winners:
            try:
                dynamodb.update_item(
                    TableName=table,
                    Key={"id": {"S": key}},
                    UpdateExpression="SET writer = :writer",
                    ConditionExpression="attribute_not_exists(id)",
                    ExpressionAttributeValues={":writer": {"N": str(writer)}},
                )
                winners[key].append(writer)
            except dynamodb.exceptions.ConditionalCheckFailedException:
                pass

    def read() -> None:
        start.wait()
        while not done.is_set():
            for key in winners:
                item = dynamodb.get_item(TableName=table, Key={"id": {"S": key}}, ConsistentRead=True).get(
                    "Item"
                )
                if item is not None and "writer" not in item:
                    half_written.append(item)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(WRITERS)]
    reader = threading.Thread(target=read)
    for thread in [*threads, reader]:
        thread.start()
    # When they all run
    for thread in threads:
        thread.join()
    done.set()
    reader.join()
    # Then each item has exactly one writer, and no read saw an item without its attribute
    assert {key: len(writers) for key, writers in winners.items()} == dict.fromkeys(winners, 1)
    assert half_written == []
