output "identifier" {
  description = "Identifier of the primary cluster."
  value       = aws_dsql_cluster.primary.identifier
}

output "endpoint" {
  description = "Endpoint the Temporal services connect to (<identifier>.dsql.<region>.on.aws, port 5432)."
  value       = "${aws_dsql_cluster.primary.identifier}.dsql.${var.region}.on.aws"
}

output "arn" {
  description = "ARN of the primary cluster."
  value       = aws_dsql_cluster.primary.arn
}

output "region" {
  description = "Region of the primary cluster."
  value       = var.region
}

output "peer_endpoint" {
  description = "Endpoint of the peer cluster of a multi-Region pair, or null."
  value       = local.multi_region ? "${aws_dsql_cluster.peer[0].identifier}.dsql.${var.peer_region}.on.aws" : null
}

output "service_connect_policy_arn" {
  description = "IAM policy for the Temporal services' role (DSQL_SERVICE_PRINCIPAL_ARN): dsql:DbConnect on this cluster only."
  value       = aws_iam_policy.temporal_dsql_connect.arn
}

output "schema_admin_policy_arn" {
  description = "IAM policy for whoever runs the schema setup: dsql:DbConnectAdmin on this cluster only."
  value       = aws_iam_policy.temporal_dsql_schema_admin.arn
}
