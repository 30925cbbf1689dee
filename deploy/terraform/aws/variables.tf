# --- Where and what -----------------------------------------------------------

variable "aws_region" {
  description = "AWS region of the whole environment, e.g. eu-west-1."
  type        = string
}

variable "environment" {
  description = "Environment name: part of every resource name and secret path, and the GitHub environment that deploys it."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,15}$", var.environment))
    error_message = "environment must be 2-16 lowercase letters, digits or dashes, starting with a letter."
  }
}

variable "name" {
  description = "Name prefix of every resource (with the environment appended)."
  type        = string
  default     = "mercato"
}

variable "tags" {
  description = "Extra tags on every resource (cost centre, owner)."
  type        = map(string)
  default     = {}
}

# --- Network ------------------------------------------------------------------

variable "vpc_cidr" {
  description = "CIDR of the VPC (a /16): per zone a /19 private, a /21 data (in the fourth /19) and a /22 public subnet."
  type        = string
  default     = "10.0.0.0/16"

  validation {
    condition     = can(cidrnetmask(var.vpc_cidr)) && tonumber(split("/", var.vpc_cidr)[1]) == 16
    error_message = "vpc_cidr must be a /16 CIDR block."
  }
}

variable "availability_zone_count" {
  description = "How many availability zones the VPC, the node group, RDS and ElastiCache span."
  type        = number
  default     = 3

  validation {
    condition     = var.availability_zone_count >= 2 && var.availability_zone_count <= 3
    error_message = "availability_zone_count must be 2 or 3."
  }
}

variable "single_nat_gateway" {
  description = "One NAT gateway for all zones (cheaper; a zone outage cuts the others' egress) instead of one per zone."
  type        = bool
  default     = false
}

variable "flow_log_retention_days" {
  description = "Days the VPC flow logs are kept in CloudWatch Logs."
  type        = number
  default     = 30
}

# --- Kubernetes (EKS) ---------------------------------------------------------

variable "kubernetes_version" {
  description = "EKS Kubernetes version (minor), e.g. 1.33."
  type        = string
  default     = "1.33"
}

variable "cluster_endpoint_public_access" {
  description = "Whether the EKS API is reachable from the internet (limited to cluster_endpoint_public_access_cidrs). GitHub-hosted runners need it; self-hosted runners in the VPC do not."
  type        = bool
  default     = true
}

variable "cluster_endpoint_public_access_cidrs" {
  description = "CIDRs allowed to reach the public EKS API endpoint (the deploy runners' and operators' egress addresses)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.cluster_endpoint_public_access_cidrs : can(cidrnetmask(c)) && c != "0.0.0.0/0"])
    error_message = "cluster_endpoint_public_access_cidrs must be CIDR blocks, and not 0.0.0.0/0."
  }
}

variable "cluster_admin_principal_arns" {
  description = "IAM roles or users (the platform team's) given cluster-admin access entries."
  type        = list(string)
  default     = []
}

variable "node_instance_types" {
  description = "EC2 instance types of the managed node group, first choice first."
  type        = list(string)
  default     = ["m6i.large"]
}

variable "node_capacity_type" {
  description = "ON_DEMAND or SPOT for the managed node group."
  type        = string
  default     = "ON_DEMAND"

  validation {
    condition     = contains(["ON_DEMAND", "SPOT"], var.node_capacity_type)
    error_message = "node_capacity_type must be ON_DEMAND or SPOT."
  }
}

variable "node_min_size" {
  description = "Fewest nodes in the managed node group."
  type        = number
  default     = 3
}

variable "node_desired_size" {
  description = "Nodes the group starts with (later changes are the autoscaler's; Terraform ignores them)."
  type        = number
  default     = 3
}

variable "node_max_size" {
  description = "Most nodes in the managed node group."
  type        = number
  default     = 6
}

variable "node_disk_size_gib" {
  description = "Root volume size of each node, GiB (gp3, encrypted)."
  type        = number
  default     = 50
}

variable "cluster_log_retention_days" {
  description = "Days the EKS control-plane logs are kept."
  type        = number
  default     = 90
}

variable "external_secrets_service_account" {
  description = "Namespace and name of the External Secrets Operator's service account, which reads this environment's secrets."
  type = object({
    namespace = string
    name      = string
  })
  default = {
    namespace = "external-secrets"
    name      = "external-secrets"
  }
}

# --- Load balancer ------------------------------------------------------------

variable "public_hostname" {
  description = "Host name the shop is served on (a DNS record pointing at the load balancer; its certificate is certificate_arn)."
  type        = string
}

variable "certificate_arn" {
  description = "ACM certificate of public_hostname, for the load balancer's HTTPS listener."
  type        = string

  validation {
    condition     = can(regex("^arn:[a-z-]+:acm:", var.certificate_arn))
    error_message = "certificate_arn must be an ACM certificate ARN."
  }
}

# --- Email (SES) --------------------------------------------------------------

variable "email_domain" {
  description = "Domain the shop's and the alerts' emails are sent from (an SES identity, verified by DKIM records)."
  type        = string
}

variable "email_from" {
  description = "Sender of the shop's emails and the alerts, an address of email_domain, e.g. Mercato <no-reply@shop.example.com>."
  type        = string
}

variable "alert_email" {
  description = "Address Alertmanager sends the alerts to."
  type        = string
}

# --- PostgreSQL (RDS) ---------------------------------------------------------

variable "postgres_version" {
  description = "PostgreSQL major version of the RDS instance (its parameter group family follows)."
  type        = string
  default     = "16"
}

variable "db_instance_class" {
  description = "RDS instance class."
  type        = string
  default     = "db.m6g.large"
}

variable "db_allocated_storage_gib" {
  description = "Initial RDS storage, GiB (gp3)."
  type        = number
  default     = 50
}

variable "db_max_allocated_storage_gib" {
  description = "Upper bound of RDS storage autoscaling, GiB."
  type        = number
  default     = 200
}

variable "db_multi_az" {
  description = "A standby in a second zone with synchronous replication and automatic failover (doubles the instance cost)."
  type        = bool
  default     = true
}

variable "db_backup_retention_days" {
  description = "Days of automated backups (point-in-time recovery window)."
  type        = number
  default     = 14

  validation {
    condition     = var.db_backup_retention_days >= 1 && var.db_backup_retention_days <= 35
    error_message = "db_backup_retention_days must be 1-35 (0 would turn automated backups off)."
  }
}

variable "db_deletion_protection" {
  description = "Refuse to delete the RDS instance until this is turned off."
  type        = bool
  default     = true
}

# --- Redis (ElastiCache) ------------------------------------------------------

variable "redis_engine_version" {
  description = "ElastiCache Redis OSS engine version (7.x: ACL selectors and read-only key patterns)."
  type        = string
  default     = "7.1"
}

variable "redis_node_type" {
  description = "ElastiCache node type."
  type        = string
  default     = "cache.m6g.large"
}

variable "redis_node_count" {
  description = "Nodes of the replication group: one primary and the rest replicas, spread over the zones."
  type        = number
  default     = 3

  validation {
    condition     = var.redis_node_count >= 2 && var.redis_node_count <= 6
    error_message = "redis_node_count must be 2-6 (automatic failover needs a replica)."
  }
}

# --- Images (ECR) -------------------------------------------------------------

variable "create_ecr_repositories" {
  description = "Create the six image repositories in this stack. Set false in a second environment of the same account, which pulls from the first one's."
  type        = bool
  default     = true
}

variable "ecr_repository_prefix" {
  description = "Repository names are <prefix>/<service>; the images the manifests name mercato/<service> are rewritten to them."
  type        = string
  default     = "mercato"
}

variable "ecr_keep_release_images" {
  description = "Release images (tags v*) each repository keeps."
  type        = number
  default     = 50
}

variable "ecr_keep_commit_images" {
  description = "Commit images (tags sha-*) each repository keeps."
  type        = number
  default     = 100
}

# --- CI/CD (GitHub Actions) ---------------------------------------------------

variable "github_repository" {
  description = "owner/name of the GitHub repository whose workflows push images and deploy this environment."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", var.github_repository))
    error_message = "github_repository must be owner/name."
  }
}

variable "github_oidc_provider_arn" {
  description = "ARN of the account's existing GitHub Actions OIDC provider; null creates it (an account has at most one)."
  type        = string
  default     = null
}
