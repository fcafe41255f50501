"""Session-wide fixtures: each real service starts once per test session."""

pytest_plugins = [
    "tests.fixtures.kafka",
    "tests.fixtures.databases",
    "tests.fixtures.s3",
    "tests.fixtures.spark",
]
