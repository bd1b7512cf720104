"""Online learning on tick features: delayed labels, models, quality metrics, evaluation."""

# the learners' names (spark.ml.models builds them); here so the CLI lists them without river
MODEL_NAMES = ("logreg", "hoeffding", "arf", "amf", "gbm")
DEFAULT_MODEL = "gbm"  # measured best: docs/ml.md
