"""Tests of the SQL store beyond the shared contract: migrations, retries, failures, plans."""
