"""SageMaker's built-in XGBoost algorithm: ``sagedock train --algorithm xgboost`` and
``sagedock serve --algorithm xgboost`` (or ``SAGEDOCK_ALGORITHM=xgboost`` in the image).

Modules: :mod:`.hyperparameters` (the schema and its validation), :mod:`.metrics` (metric
names, regexes, container-computed metrics), :mod:`.data` (channels -> xgboost matrices),
:mod:`.train` (algorithm-mode training), :mod:`.model` (loading model artifacts) and
:mod:`.inference` (the serving hooks). Importing this package imports no framework.
"""
