"""Research at scale: the selection protocol of the defaults (docs/policy.md)."""
