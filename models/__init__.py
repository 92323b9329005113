"""Machine learning for the PHM platform: no Django imports here.

Estimators follow the contracts in DESIGN.md (AnomalyDetector, FaultClassifier,
RULEstimator, ImageClassifier); the backbone loader and the Time-LLM style
reprogramming trunk are shared by all of them.
"""
