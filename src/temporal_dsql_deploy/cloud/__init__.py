"""Cloud: the DSQL cluster in AWS, Terraform, deploy and cleanup."""
