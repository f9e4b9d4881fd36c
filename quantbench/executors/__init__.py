"""Run a plan of tasks: in this process, in worker processes, or on a Ray cluster."""
