"""The class simulation: the real coordinator, PostgreSQL and worker engine, N volunteers
whose compute is a stand-in (`python -m benchmarks.class_sim`)."""
