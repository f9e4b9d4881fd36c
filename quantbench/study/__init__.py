"""A study as a plan of tasks, the recommendation, and sweeps."""
