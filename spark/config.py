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
The signal pipeline's settings (SPARK_MODEL, SPARK_HORIZON_S, ...) are read once by
``spark.settings.Settings.from_env``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from spark.errors import SparkError

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
