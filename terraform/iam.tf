# What the Temporal services need: admin connections to this cluster (and its peer) only.
data "aws_iam_policy_document" "temporal_dsql_connect" {
  statement {
    sid       = "ConnectAsAdmin"
    actions   = ["dsql:DbConnectAdmin"]
    resources = concat([aws_dsql_cluster.primary.arn], aws_dsql_cluster.peer[*].arn)
  }
}

resource "aws_iam_policy" "temporal_dsql_connect" {
  name        = "${var.project_name}-temporal-dsql-connect"
  description = "Lets the Temporal services of ${var.project_name} connect to their DSQL cluster as admin."
  policy      = data.aws_iam_policy_document.temporal_dsql_connect.json
}
