"""Celery's setting names (celery/app/defaults.py, 5.x) and what each becomes here.

`translate` turns one `name=value` of `app.conf.update(...)` / `config_from_object(...)` into our
settings: a Celery setting with an equivalent sets the TASKQUEUE_ field; one without has no
effect (it is still stored, so `app.conf.<name>` reads it back); one whose silent loss would
mislead (a pickle serializer, an unknown broker scheme, a result backend outside the database) is refused
with ImproperlyConfigured. docs/coming-from-celery.md has the table for users.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

from .brokerurls import broker_kind
from .exceptions import ImproperlyConfigured

# Every setting of Celery 5.x's celery/app/defaults.py, by its lowercase name.
CELERY_SETTINGS = frozenset("""
accept_content result_accept_content enable_utc imports include timezone beat_max_loop_interval
beat_schedule beat_scheduler beat_schedule_filename beat_sync_every beat_cron_starting_deadline
broker_url broker_read_url broker_write_url broker_transport broker_transport_options
broker_connection_timeout broker_connection_retry broker_connection_retry_on_startup
broker_connection_max_retries broker_channel_error_retry broker_failover_strategy broker_heartbeat
broker_heartbeat_checkrate broker_login_method broker_native_delayed_delivery_queue_type
broker_pool_limit broker_pool_acquire_timeout broker_use_ssl broker_host broker_port broker_user
broker_password broker_vhost cache_backend cache_backend_options cassandra_entry_ttl
cassandra_keyspace cassandra_port cassandra_read_consistency cassandra_servers cassandra_bundle_path
cassandra_table cassandra_write_consistency cassandra_auth_provider cassandra_auth_kwargs
cassandra_options s3_access_key_id s3_secret_access_key s3_bucket s3_base_path s3_endpoint_url
s3_region azureblockblob_container_name azureblockblob_retry_initial_backoff_sec
azureblockblob_retry_increment_base azureblockblob_retry_max_attempts azureblockblob_base_path
azureblockblob_connection_timeout azureblockblob_read_timeout gcs_bucket gcs_project gcs_base_path
gcs_ttl control_queue_ttl control_queue_expires control_queue_exclusive control_queue_durable
control_exchange couchbase_backend_settings arangodb_backend_settings mongodb_backend_settings
cosmosdbsql_database_name cosmosdbsql_collection_name cosmosdbsql_consistency_level
cosmosdbsql_max_retry_attempts cosmosdbsql_max_retry_wait_time event_queue_expires event_queue_ttl
event_queue_prefix event_queue_exclusive event_queue_durable event_serializer event_exchange
redis_backend_use_ssl redis_db redis_host redis_max_connections redis_username redis_password
redis_port redis_socket_timeout redis_socket_connect_timeout redis_retry_on_timeout
redis_socket_keepalive result_backend result_cache_max result_compression result_exchange
result_exchange_type result_expires result_persistent result_extended result_serializer
result_backend_transport_options result_chord_retry_interval result_chord_join_timeout
result_backend_max_sleep_between_retries_ms result_backend_max_retries
result_backend_base_sleep_between_retries_ms result_backend_always_retry
elasticsearch_retry_on_timeout elasticsearch_max_retries elasticsearch_timeout
elasticsearch_save_meta_as_text security_certificate security_cert_store security_key
security_key_password security_digest database_url database_engine_options database_engine_callback
database_short_lived_sessions database_table_schemas database_table_names
database_create_tables_at_setup task_acks_late task_acks_on_failure_or_timeout task_acks_on_failure
task_acks_on_timeout task_always_eager task_annotations task_compression task_create_missing_queues
task_create_missing_queue_type task_create_missing_queue_exchange_type task_inherit_parent_priority
task_default_delivery_mode task_default_queue task_default_queue_type task_default_exchange
task_default_exchange_type task_default_routing_key task_default_rate_limit task_default_priority
task_eager_propagates task_ignore_result task_store_eager_result task_protocol task_publish_retry
task_publish_retry_policy task_queues task_queue_max_priority task_reject_on_worker_lost
task_remote_tracebacks task_routes task_send_sent_event task_serializer task_soft_time_limit
task_time_limit task_store_errors_even_if_ignored task_track_started
task_allow_error_cb_on_chord_header worker_agent worker_autoscaler
worker_cancel_long_running_tasks_on_connection_loss worker_soft_shutdown_timeout
worker_enable_soft_shutdown_on_idle worker_concurrency worker_consumer worker_direct
worker_disable_rate_limits worker_deduplicate_successful_tasks worker_enable_remote_control
worker_hijack_root_logger worker_log_color worker_log_format worker_lost_wait
worker_max_memory_per_child worker_max_tasks_per_child worker_pool worker_pool_putlocks
worker_pool_restarts worker_proc_alive_timeout worker_prefetch_multiplier worker_eta_task_limit
worker_enable_prefetch_count_reduction worker_disable_prefetch worker_redirect_stdouts
worker_redirect_stdouts_level worker_send_task_events worker_state_db worker_task_log_format
worker_timer worker_timer_precision worker_detect_quorum_queues
""".split())

# Result backends that keep results where we keep them (django-celery-results' "django-db"), or
# that the seeds pass beside a Redis broker ("redis://"): results always live in the database.
RESULT_BACKENDS = ("django-db", "redis", "rediss")


def _broker_url(value: Any) -> str:
    url = str(value)
    if broker_kind(url) is None:
        raise ImproperlyConfigured(
            f"broker {url!r}: taskqueue's brokers are Redis (redis://, rediss://, unix://), RabbitMQ "
            f"(amqp://) and the database (django://); {url.split(':', 1)[0]}:// is not supported")
    return url


def result_backend(value: Any) -> None:
    """Accept a backend that means 'results in the database' here; refuse the others."""
    if value is None or value == "":
        return
    kind = str(value).split(":", 1)[0]
    if kind not in RESULT_BACKENDS:
        raise ImproperlyConfigured(
            f"result backend {value!r}: taskqueue stores every result in Django's database "
            "(taskqueue.models.TaskResult); use 'django-db' or leave the backend out")


def _json_only(name: str) -> Callable[[Any], None]:
    def check(value: Any) -> None:
        values = [value] if isinstance(value, str) else list(value or ())
        if any(str(v) not in ("json", "application/json") for v in values):
            raise ImproperlyConfigured(f"{name}={value!r}: taskqueue sends and stores JSON only (never pickle); "
                                       "set 'json' or leave it out")
    return check


def _routes(value: Any) -> dict:
    """task_routes: a dict, or a list of dicts (the first match wins, as in Celery)."""
    routes = [value] if isinstance(value, dict) else list(value or ())
    merged: dict = {}
    for route in routes:
        if not isinstance(route, dict):
            raise ImproperlyConfigured(f"task_routes: {route!r} is a router function or class; taskqueue "
                                       "routes with a dict of task name (glob) -> {'queue': name}")
        for pattern, target in route.items():
            merged.setdefault(pattern, target if isinstance(target, dict) else {"queue": str(target)})
    return merged


def _expires(value: Any) -> Any:
    return value if value is None or isinstance(value, timedelta) else timedelta(seconds=float(value))


def _modules(value: Any) -> tuple:
    return (value,) if isinstance(value, str) else tuple(value or ())


_KEEP = object()  # a value that leaves our setting as it is


def _prefetch(value: Any) -> Any:
    return int(value) if value and int(value) > 0 else _KEEP  # Celery's 0 (no limit): keep ours


def _seconds(value: Any) -> float | None:
    return None if value is None else float(value)


# Celery name -> (our field, conversion).
MAPPED: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "broker_url": ("BROKER_URL", _broker_url),
    "broker_connection_timeout": ("BROKER_TIMEOUT", float),
    "task_default_queue": ("DEFAULT_QUEUE", str),
    "task_routes": ("ROUTES", _routes),
    "result_expires": ("RESULT_EXPIRES", _expires),
    "task_always_eager": ("TASK_ALWAYS_EAGER", bool),
    "task_eager_propagates": ("TASK_EAGER_PROPAGATES", bool),
    "task_track_started": ("TRACK_STARTED", bool),
    "worker_prefetch_multiplier": ("PREFETCH", _prefetch),
    "task_time_limit": ("TASK_TIME_LIMIT", _seconds),
    "task_soft_time_limit": ("TASK_SOFT_TIME_LIMIT", _seconds),
    "imports": ("IMPORTS", _modules),
    "include": ("IMPORTS", _modules),
    "beat_schedule": ("BEAT_SCHEDULE", lambda value: dict(value or {})),
}

# Celery names accepted only with a value that means what we do.
CHECKED: dict[str, Callable[[Any], None]] = {
    "result_backend": result_backend,
    "task_serializer": _json_only("task_serializer"),
    "result_serializer": _json_only("result_serializer"),
    "event_serializer": _json_only("event_serializer"),
    "accept_content": _json_only("accept_content"),
    "result_accept_content": _json_only("result_accept_content"),
}


def translate(name: str, value: Any, fields: Iterable[str]) -> dict[str, Any]:
    """The layer values of one setting: its own name (read back by `app.conf`) and, for a Celery
    setting with an equivalent (or one of our fields by its lowercase name), our field."""
    key = name.lower()
    values = {key: value}
    if key in CHECKED:
        CHECKED[key](value)
    if key in MAPPED:
        field, convert = MAPPED[key]
        converted = convert(value)
        if converted is not _KEEP:
            values[field] = converted
    elif key.upper() in fields:
        values[key.upper()] = value
    return values


def field_for(name: str, fields: Iterable[str]) -> str | None:
    """Our field that a setting name reads (Celery's or ours, any case), if any."""
    key = name.lower()
    if key in MAPPED:
        return MAPPED[key][0]
    return key.upper() if key.upper() in fields else None


def strip_namespace(name: str, namespace: str | None) -> str | None:
    """`CELERY_BROKER_URL` with namespace "CELERY" -> "broker_url"; None for a name outside it."""
    if not namespace:
        return name
    prefix = f"{namespace}_"
    return name[len(prefix):].lower() if name.startswith(prefix) else None


def is_setting(name: str, fields: Iterable[str]) -> bool:
    """Whether a name without namespace is a setting (not a module's helper or import)."""
    key = name.lower()
    return key in CELERY_SETTINGS or key.upper() in fields
