"""Evaluation metrics: one module per task (detection, classification, regression, retrieval)."""
