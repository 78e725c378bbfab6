"""Temporal: what the stack sets up in Temporal (namespace, visibility index) and the smoke test."""
