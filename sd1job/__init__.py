"""sd1job: train neural models of a guitar pedal and sweep a hyperparameter across a cluster."""

__version__ = "0.1.0"
