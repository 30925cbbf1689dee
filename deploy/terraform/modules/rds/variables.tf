variable "identifier" {
  description = "Name of the RDS instance and its companions."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the instance."
  type        = string
}

variable "subnet_ids" {
  description = "Data subnets the instance (and its Multi-AZ standby) may live in."
  type        = list(string)
}

variable "client_security_group_id" {
  description = "The only security group admitted on 5432 (the cluster's)."
  type        = string
}

variable "postgres_version" {
  description = "PostgreSQL major version."
  type        = string
}

variable "instance_class" {
  description = "RDS instance class."
  type        = string
}

variable "allocated_storage_gib" {
  description = "Initial storage, GiB."
  type        = number
}

variable "max_allocated_storage" {
  description = "Storage autoscaling ceiling, GiB."
  type        = number
}

variable "multi_az" {
  description = "Synchronous standby in another zone."
  type        = bool
}

variable "backup_retention_days" {
  description = "Days of automated backups."
  type        = number
}

variable "deletion_protection" {
  description = "Refuse deletion while on."
  type        = bool
}

variable "backup_window" {
  description = "Daily backup window, UTC (hh24:mi-hh24:mi)."
  type        = string
  default     = "02:00-03:00"
}

variable "maintenance_window" {
  description = "Weekly maintenance window, UTC (ddd:hh24:mi-ddd:hh24:mi); must not overlap the backup window."
  type        = string
  default     = "sun:03:30-sun:04:30"
}
