# Least privilege, as AWS advises for applications on DSQL: the Temporal services connect as their own database
# role (dsql:DbConnect; schema setup maps it to their IAM role with AWS IAM GRANT and grants it DML only), and
# only the schema setup connects as admin. Both are scoped to this cluster and its peer.
locals {
  dsql_clusters = concat([aws_dsql_cluster.primary.arn], aws_dsql_cluster.peer[*].arn)
}

data "aws_iam_policy_document" "temporal_dsql_connect" {
  statement {
    sid       = "ConnectAsServiceRole"
    actions   = ["dsql:DbConnect"]
    resources = local.dsql_clusters
  }
}

resource "aws_iam_policy" "temporal_dsql_connect" {
  name        = "${var.project_name}-temporal-dsql-connect"
  description = "Lets the Temporal services of ${var.project_name} connect to their DSQL cluster as a custom database role (not admin)."
  policy      = data.aws_iam_policy_document.temporal_dsql_connect.json
}

data "aws_iam_policy_document" "temporal_dsql_schema_admin" {
  statement {
    sid       = "ConnectAsAdminForSchemaChanges"
    actions   = ["dsql:DbConnectAdmin"]
    resources = local.dsql_clusters
  }
}

resource "aws_iam_policy" "temporal_dsql_schema_admin" {
  name        = "${var.project_name}-temporal-dsql-schema-admin"
  description = "Lets the schema setup of ${var.project_name} connect to its DSQL cluster as admin: schema changes and the services' role."
  policy      = data.aws_iam_policy_document.temporal_dsql_schema_admin.json
}
