"""The SQL store's Alembic migrations, shipped in the package so that an installed copy migrates."""
