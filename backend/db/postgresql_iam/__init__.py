"""PostgreSQL with IAM authentication: see ``base``."""
