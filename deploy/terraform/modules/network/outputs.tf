output "vpc_id" {
  description = "ID of the VPC."
  value       = aws_vpc.this.id
}

output "vpc_cidr" {
  description = "CIDR of the VPC."
  value       = aws_vpc.this.cidr_block
}

output "private_subnet_ids" {
  description = "Private subnets, one per zone, in zone order: nodes, RDS, ElastiCache."
  value       = [for az in var.availability_zones : aws_subnet.private[az].id]
}

output "data_subnet_ids" {
  description = "Data subnets, one per zone, in zone order: RDS and ElastiCache."
  value       = [for az in var.availability_zones : aws_subnet.data[az].id]
}

output "data_cidr" {
  description = "The block every data subnet is in (what pods may reach 5432 and 6379 in)."
  value       = local.data_cidr
}

output "public_subnet_ids" {
  description = "Public subnets, one per zone, in zone order: the load balancer and NAT gateways."
  value       = [for az in var.availability_zones : aws_subnet.public[az].id]
}

output "nat_public_ips" {
  description = "Egress addresses of the private subnets (for allow-lists elsewhere)."
  value       = [for eip in aws_eip.nat : eip.public_ip]
}
