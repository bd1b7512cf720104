"""Online learning on tick features: learners, quality metrics, evaluation, the registry.

The learners run inside the SignalPipeline's compiled loop (``spark.pipeline``):
``spark.ml.linear`` (logreg) and ``spark.ml.trees`` (gbm's trees).
"""
