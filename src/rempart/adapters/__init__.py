"""Adapters: translate a protocol (wforce/Dovecot, native JSON, nginx, logs) into Attempts and back."""
