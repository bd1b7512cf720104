"""The tick path of a worker: batch consume, decode, SignalPipeline step, produce, commit."""
