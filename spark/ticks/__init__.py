"""Ticks: the record, its validation, file readers, replay and the producer API."""

from spark.ticks.model import InvalidTick, Tick, validate
from spark.ticks.producer import Counts, TickProducer

__all__ = ["Counts", "InvalidTick", "Tick", "TickProducer", "validate"]
