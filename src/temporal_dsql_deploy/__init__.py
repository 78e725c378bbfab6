"""Deploy and operate Temporal on Aurora DSQL with Elasticsearch visibility."""
