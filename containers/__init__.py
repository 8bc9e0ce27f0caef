"""sagedock.containers: built-in algorithms (xgboost, linear_learner, object_detection)."""
