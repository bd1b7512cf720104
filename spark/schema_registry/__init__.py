"""A Confluent-compatible Schema Registry served by ``spark up`` (docs/schema-registry.md)."""
