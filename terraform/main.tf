locals {
  multi_region = var.peer_region != null
  tags = merge(var.tags, {
    Project   = var.project_name
    ManagedBy = "temporal-dsql-deploy"
  })
}

resource "aws_dsql_cluster" "primary" {
  deletion_protection_enabled = var.deletion_protection

  dynamic "multi_region_properties" {
    for_each = local.multi_region ? [1] : []
    content {
      witness_region = var.witness_region
    }
  }

  tags = { Name = "${var.project_name}-temporal" }
}

resource "aws_dsql_cluster" "peer" {
  count    = local.multi_region ? 1 : 0
  provider = aws.peer

  deletion_protection_enabled = var.deletion_protection

  multi_region_properties {
    witness_region = var.witness_region
  }

  tags = { Name = "${var.project_name}-temporal-peer" }
}

# Each side of the pair names the other; both share the witness Region.
resource "aws_dsql_cluster_peering" "primary" {
  count = local.multi_region ? 1 : 0

  identifier     = aws_dsql_cluster.primary.identifier
  clusters       = [aws_dsql_cluster.peer[0].arn]
  witness_region = var.witness_region
}

resource "aws_dsql_cluster_peering" "peer" {
  count    = local.multi_region ? 1 : 0
  provider = aws.peer

  identifier     = aws_dsql_cluster.peer[0].identifier
  clusters       = [aws_dsql_cluster.primary.arn]
  witness_region = var.witness_region
}
