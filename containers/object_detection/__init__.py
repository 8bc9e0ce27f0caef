"""Object Detection, SageMaker's built-in SSD algorithm (VGG-16 or ResNet-50 base), on torch.

The package follows the other built-in algorithms: :mod:`.hyperparameters` validates a job's
hyperparameters into a frozen config; the data readers, the trainer and the inference handlers
sit beside it. Importing the package imports no framework: torch and torchvision are imported
by the modules that train and serve, when they run.
"""
