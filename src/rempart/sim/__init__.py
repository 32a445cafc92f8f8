"""Simulator: user population, attacks, runners, scoring and baselines."""
