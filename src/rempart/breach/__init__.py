"""Leak corpus: ingest combo lists as keyed fingerprints, audit, password checks."""
