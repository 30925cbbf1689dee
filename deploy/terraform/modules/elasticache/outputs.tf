output "primary_endpoint" {
  description = "Host name of the primary (it follows a failover)."
  value       = aws_elasticache_replication_group.this.primary_endpoint_address
}

output "reader_endpoint" {
  description = "Host name spreading reads over the replicas."
  value       = aws_elasticache_replication_group.this.reader_endpoint_address
}

output "port" {
  description = "Redis port (TLS)."
  value       = aws_elasticache_replication_group.this.port
}

output "security_group_id" {
  description = "Security group of the nodes."
  value       = aws_security_group.redis.id
}
