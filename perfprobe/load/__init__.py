"""The load engine: request data, schedules, workers and the sweeper that drives them."""
