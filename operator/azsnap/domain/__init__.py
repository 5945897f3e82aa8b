"""Pure policy core: models, schedule, retention, naming and planner (no I/O, `now` is always an argument)."""
