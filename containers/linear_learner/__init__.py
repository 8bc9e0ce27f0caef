"""Linear Learner, SageMaker's built-in algorithm, on torch: many linear models trained at once."""
