variable "project_name" {
  description = "Name tagged on every resource as `Project`; `invoke cleanup --destroy-infra` only destroys a cluster whose tag matches PROJECT_NAME."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,38}[a-z0-9]$", var.project_name))
    error_message = "project_name must be 3-40 lower-case letters, digits and dashes, starting with a letter."
  }
}

variable "region" {
  description = "AWS Region of the (primary) DSQL cluster, e.g. us-east-1."
  type        = string
}

variable "deletion_protection" {
  description = "Protect the cluster from deletion. On by default; turn it off (and apply) before destroying."
  type        = bool
  default     = true
}

variable "tags" {
  description = "Extra tags for every resource; Project and ManagedBy are always set."
  type        = map(string)
  default     = {}
}

variable "peer_region" {
  description = "Region of a second, peered cluster for a multi-Region pair; null for a single-Region cluster."
  type        = string
  default     = null
}

variable "witness_region" {
  description = "Witness Region of a multi-Region pair (required with peer_region; differs from both cluster Regions)."
  type        = string
  default     = null

  validation {
    condition     = var.peer_region == null || var.witness_region != null
    error_message = "witness_region is required when peer_region is set."
  }
}
