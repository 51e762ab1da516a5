"""verl 0.9.1 backend: launches, pre-flight checks (`ssl4rl doctor`), resource planning, smoke runs."""
