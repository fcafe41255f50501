"""Fault injection on real services: kill -9, concurrent stages, open transactions."""
