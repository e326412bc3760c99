"""Running experiments: the Hydra app, one-run execution, result records, loggers."""
