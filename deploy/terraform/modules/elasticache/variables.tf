variable "name" {
  description = "Name of the replication group and its companions."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the replication group."
  type        = string
}

variable "subnet_ids" {
  description = "Data subnets the nodes are spread over."
  type        = list(string)
}

variable "client_security_group_id" {
  description = "The only security group admitted on 6379 (the cluster's)."
  type        = string
}

variable "engine_version" {
  description = "Redis OSS engine version (7.x)."
  type        = string
}

variable "node_type" {
  description = "Node type."
  type        = string
}

variable "node_count" {
  description = "Nodes: one primary, the rest replicas."
  type        = number
}

variable "users" {
  description = "ACL users by name: the access string of each (the name is also the user name the program logs in with)."
  type        = map(string)
}

variable "passwords" {
  description = "Password of each user in users (16-128 characters)."
  type        = map(string)
  sensitive   = true
}

variable "snapshot_retention_days" {
  description = "Days of daily snapshots (the event stream's history)."
  type        = number
  default     = 7
}

variable "log_retention_days" {
  description = "Days the slow and engine logs are kept."
  type        = number
  default     = 30
}
