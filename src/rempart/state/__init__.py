"""State stores: the Store interface, the embedded SQLite store and the Redis store."""
