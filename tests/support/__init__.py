"""Helpers shared by tests on real services (no fakes: real databases, real Kafka)."""
