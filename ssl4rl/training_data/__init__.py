"""Training sets for the trainers: what verl and TRL read, and checks on them before a run starts."""
