terraform {
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "= 5.100.0"
    }
  }
}

provider "aws" {
  region = var.region

  default_tags {
    tags = local.tags
  }
}

# The peer cluster of a multi-Region pair lives in its own Region.
provider "aws" {
  alias  = "peer"
  region = coalesce(var.peer_region, var.region)

  default_tags {
    tags = local.tags
  }
}
