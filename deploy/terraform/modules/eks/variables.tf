variable "cluster_name" {
  description = "Name of the EKS cluster."
  type        = string
}

variable "kubernetes_version" {
  description = "Kubernetes minor version of the control plane and the nodes."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets of the control plane's interfaces and the nodes, one per zone."
  type        = list(string)
}

variable "endpoint_public_access" {
  description = "Whether the API endpoint is reachable from outside the VPC (from endpoint_public_access_cidrs only)."
  type        = bool
}

variable "endpoint_public_access_cidrs" {
  description = "CIDRs allowed to reach the public API endpoint."
  type        = list(string)
}

variable "log_retention_days" {
  description = "Days the control-plane logs are kept."
  type        = number
}

variable "node_instance_types" {
  description = "Instance types of the managed node group."
  type        = list(string)
}

variable "node_capacity_type" {
  description = "ON_DEMAND or SPOT."
  type        = string
}

variable "node_min_size" {
  description = "Fewest nodes."
  type        = number
}

variable "node_desired_size" {
  description = "Nodes at creation."
  type        = number
}

variable "node_max_size" {
  description = "Most nodes."
  type        = number
}

variable "node_disk_size_gib" {
  description = "Root volume of each node, GiB."
  type        = number
}

variable "admin_principal_arns" {
  description = "IAM principals given cluster-admin access entries (the platform team, the deploy role), by a name known before apply (for_each keys must be)."
  type        = map(string)
}

variable "addon_versions" {
  description = "Pinned versions of the EKS add-ons by name; an add-on not listed gets the default version for the cluster's Kubernetes version."
  type        = map(string)
  default     = {}
}
