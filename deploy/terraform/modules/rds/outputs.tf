output "address" {
  description = "Host name of the instance (the primary; it moves to the standby on failover)."
  value       = aws_db_instance.this.address
}

output "port" {
  description = "PostgreSQL port."
  value       = aws_db_instance.this.port
}

output "master_secret_arn" {
  description = "Secrets Manager secret RDS keeps the master user's credentials in (JSON username, password): the bootstrap job's."
  value       = aws_db_instance.this.master_user_secret[0].secret_arn
}

output "kms_key_arn" {
  description = "Key of the instance's storage and master secret (the bootstrap job's reader decrypts with it)."
  value       = module.key.arn
}

output "security_group_id" {
  description = "Security group of the instance."
  value       = aws_security_group.db.id
}
