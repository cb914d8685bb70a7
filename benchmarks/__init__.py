"""Benchmarks: scripts that print measured numbers. Nothing here is a test."""
