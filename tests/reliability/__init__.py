"""Reliability tests (a package, so that its conftest never shadows tests/protocol/conftest.py when both suites are collected together)."""
