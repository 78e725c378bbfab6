"""Database: DSQL and PostgreSQL connections, the schema applier, the DSQL schema translation, the local database."""
