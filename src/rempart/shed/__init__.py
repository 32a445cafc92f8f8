"""Availability: admission control by criticality and data-plane configuration."""
