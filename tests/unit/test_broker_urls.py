"""Redis URLs the broker takes beyond redis-py's own: Sentinel, and the `wait_replicas` option."""

import pytest

from taskqueue.brokers import broker_kind
from taskqueue.brokers.redis import connect, wait_replicas


def test_a_sentinel_url_names_every_sentinel_the_service_the_db_and_the_masters_password():
    client = connect("redis+sentinel://:s3cret@10.0.0.1:26380,10.0.0.2/tasks/4?sentinel_password=other")
    pool = client.connection_pool
    assert broker_kind("redis+sentinel://h/tasks") == "redis"
    assert pool.service_name == "tasks"
    assert [(s.connection_pool.connection_kwargs["host"], s.connection_pool.connection_kwargs["port"])
            for s in pool.sentinel_manager.sentinels] == [("10.0.0.1", 26380), ("10.0.0.2", 26379)]
    assert {s.connection_pool.connection_kwargs["password"] for s in pool.sentinel_manager.sentinels} == {"other"}
    assert pool.connection_kwargs["db"] == 4 and pool.connection_kwargs["password"] == "s3cret"


def test_a_sentinel_url_without_a_service_is_refused():
    with pytest.raises(ValueError, match="names no Sentinel service"):
        connect("redis+sentinel://10.0.0.1:26379/")


def test_wait_replicas_is_ours_and_not_passed_to_redis_py():
    assert wait_replicas("redis://127.0.0.1:6379/0") == 0
    assert wait_replicas("redis+sentinel://h:1/tasks/0?wait_replicas=2") == 2
    client = connect("redis://127.0.0.1:6379/3?wait_replicas=1")  # redis-py refuses options it does not know
    assert client.connection_pool.connection_kwargs["db"] == 3


def test_a_cluster_url_names_its_startup_nodes_and_the_password():
    from taskqueue.brokers.rediscluster import home_prefix, parse_cluster_url, queue_prefix

    assert broker_kind("redis+cluster://10.0.0.1:7000") == "redis"
    assert parse_cluster_url("redis+cluster://u:s%40cret@10.0.0.1:7000,10.0.0.2/?wait_replicas=1") == (
        [("10.0.0.1", 7000), ("10.0.0.2", 6379)], "u", "s@cret")
    assert parse_cluster_url("redis+cluster://:pw@h:7001") == ([("h", 7001)], None, "pw")
    assert wait_replicas("redis+cluster://h:7000/?wait_replicas=1") == 1
    # every key of a queue shares the hash tag between the braces; the home keys have their own
    assert queue_prefix("taskqueue", "default") == "{taskqueue:default}" and home_prefix("taskqueue") == "{taskqueue}"


def test_a_cluster_url_without_a_node_is_refused():
    from taskqueue.brokers.rediscluster import parse_cluster_url

    with pytest.raises(ValueError, match="names no cluster node"):
        parse_cluster_url("redis+cluster:///")
