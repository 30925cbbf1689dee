variable "name" {
  description = "Name prefix of the VPC and everything in it."
  type        = string
}

variable "cidr" {
  description = "CIDR of the VPC (/16 or larger)."
  type        = string
}

variable "availability_zones" {
  description = "Availability zones to span, one private and one public subnet each."
  type        = list(string)
}

variable "single_nat_gateway" {
  description = "One NAT gateway shared by every zone instead of one per zone."
  type        = bool
}

variable "cluster_name" {
  description = "EKS cluster whose load balancers and nodes use these subnets (subnet discovery tags)."
  type        = string
}

variable "flow_log_retention_days" {
  description = "Days the VPC flow logs are kept."
  type        = number
}
