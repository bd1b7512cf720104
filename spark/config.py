"""Where Spark finds Kafka, the schema registry and its own state; all from the environment.

Nothing here needs a config file: with no variables set, Spark uses the
embedded broker that ``spark broker start`` (or ``spark up``) recorded.

Environment
-----------
KAFKA_BOOTSTRAP_SERVERS   use this cluster; no embedded broker is started
KAFKA_SECURITY_PROTOCOL   PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL
KAFKA_SASL_MECHANISM      PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512
KAFKA_SASL_USERNAME / KAFKA_SASL_PASSWORD
KAFKA_SSL_CA_LOCATION / KAFKA_SSL_CERTIFICATE_LOCATION / KAFKA_SSL_KEY_LOCATION
                          / KAFKA_SSL_KEY_PASSWORD
SCHEMA_REGISTRY_URL       use this Confluent-compatible registry (else embedded)
SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO   user:password for it
SPARK_HOME                state folder (default ~/.spark): broker/worker records and logs
SPARK_TOPIC_PREFIX        put in front of every topic name (isolates tests and tenants)
SPARK_CONNECT_TIMEOUT     seconds to wait for a broker before saying it is unreachable (5)
SPARK_MODEL, SPARK_HORIZON_S, SPARK_SIGNAL_BAND   the predictor (gbm, 1.0 s, 0.1)
SPARK_GBM_WINDOW, SPARK_GBM_REFIT   the gbm learner's window and refit period, labels (40000, 5000)
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from spark.errors import SparkError
from spark.ml import DEFAULT_MODEL

# Environment variable -> librdkafka property, for SASL/TLS pass-through.
SECURITY_ENV = {
    "KAFKA_SECURITY_PROTOCOL": "security.protocol",
    "KAFKA_SASL_MECHANISM": "sasl.mechanism",
    "KAFKA_SASL_USERNAME": "sasl.username",
    "KAFKA_SASL_PASSWORD": "sasl.password",
    "KAFKA_SSL_CA_LOCATION": "ssl.ca.location",
    "KAFKA_SSL_CERTIFICATE_LOCATION": "ssl.certificate.location",
    "KAFKA_SSL_KEY_LOCATION": "ssl.key.location",
    "KAFKA_SSL_KEY_PASSWORD": "ssl.key.password",
}


def spark_home() -> Path:
    """The state folder, created on first use."""
    home = Path(os.environ.get("SPARK_HOME") or Path.home() / ".spark")
    home.mkdir(parents=True, exist_ok=True)
    return home


def external_bootstrap() -> str | None:
    """The cluster named by ``KAFKA_BOOTSTRAP_SERVERS``, if any."""
    return os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or None


def read_state(name: str) -> dict | None:
    """A JSON record Spark left in its home (``broker``, ``worker``), or None."""
    path = spark_home() / f"{name}.json"
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def write_state(name: str, record: dict) -> None:
    path = spark_home() / f"{name}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2))
    tmp.replace(path)


def clear_state(name: str) -> None:
    (spark_home() / f"{name}.json").unlink(missing_ok=True)


def bootstrap_servers() -> str:
    """Where Kafka is: ``KAFKA_BOOTSTRAP_SERVERS``, else the recorded embedded broker."""
    external = external_bootstrap()
    if external:
        return external
    broker = read_state("broker")
    if broker:
        return broker["address"]
    raise SparkError(
        "no Kafka broker is configured: run `spark broker start` (or `spark up`) "
        "for the embedded one, or set KAFKA_BOOTSTRAP_SERVERS"
    )


def security_config() -> dict[str, str]:
    """librdkafka SASL/TLS properties taken from the environment."""
    return {prop: os.environ[env] for env, prop in SECURITY_ENV.items() if os.environ.get(env)}


def schema_registry_url() -> str | None:
    return os.environ.get("SCHEMA_REGISTRY_URL") or None


def schema_registry_auth() -> str | None:
    return os.environ.get("SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO") or None


def connect_timeout() -> float:
    try:
        return float(os.environ.get("SPARK_CONNECT_TIMEOUT", "5"))
    except ValueError:
        raise SparkError("SPARK_CONNECT_TIMEOUT must be a number of seconds") from None


def _float_env(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        raise SparkError(f"{name} must be a number") from None


def model_settings() -> dict:
    """The predictor's settings, from the environment.

    SPARK_MODEL (gbm): the champion's learner when the registry has none.
    SPARK_CHALLENGERS (none): comma-separated learners run in shadow.
    SPARK_HORIZON_S (1.0): label horizon. SPARK_SIGNAL_BAND (0.1): signal policy band.
    SPARK_SNAPSHOT_S (30): seconds between registry snapshots.
    SPARK_PROMOTION_MARGIN (0.01), SPARK_PROMOTION_MIN_LABELS (2000): promotion rule.
    """
    challengers = [c.strip() for c in os.environ.get("SPARK_CHALLENGERS", "").split(",")]
    return {
        "model": os.environ.get("SPARK_MODEL", DEFAULT_MODEL),
        "challengers": [c for c in challengers if c],
        "horizon_s": _float_env("SPARK_HORIZON_S", 1.0),
        "band": _float_env("SPARK_SIGNAL_BAND", 0.1),
        "snapshot_s": _float_env("SPARK_SNAPSHOT_S", 30.0),
        "margin": _float_env("SPARK_PROMOTION_MARGIN", 0.01),
        "min_labels": int(_float_env("SPARK_PROMOTION_MIN_LABELS", 2000)),
    }
