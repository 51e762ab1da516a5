"""`ssl4rl demo`: the whole chain on one machine, in minutes on a CPU (`workflow.run_demo`)."""
