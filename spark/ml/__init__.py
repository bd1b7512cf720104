"""Online learning on tick features: delayed labels, models, quality metrics, evaluation."""
