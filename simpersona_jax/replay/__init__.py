"""Training traces by browser replay: plans from sessions, the path planner, goals, trace shards."""
