"""Contract tests of core.store, run against every database backend."""
