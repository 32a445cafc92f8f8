"""Enforcement at the edge: nftables sets kept in sync with Rempart's block and allow lists."""
