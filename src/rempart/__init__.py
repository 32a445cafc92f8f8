"""Rempart: a self-hosted shield for logins and availability."""

__version__ = "0.1.0"
