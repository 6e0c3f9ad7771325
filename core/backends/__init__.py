"""Database backends of our own (ENGINE paths for DATABASES)."""
