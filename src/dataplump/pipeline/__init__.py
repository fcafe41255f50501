"""Stage runners: extract, transform, load; each reads one place and writes to Kafka or a store."""
