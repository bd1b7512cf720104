"""Paper execution: signals to orders and fills under pre-trade risk limits (no Kafka here)."""
