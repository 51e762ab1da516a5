"""Training backends: the only modules that import verl or TRL (`verl/`, `trl/`)."""
