output "redis_passwords" {
  description = "Redis ACL password of each program."
  value       = { for s in var.services : s => random_password.redis[s].result }
  sensitive   = true
}

output "service_secret_arns" {
  description = "Secret of each program by name."
  value       = { for s in var.services : s => aws_secretsmanager_secret.this[s].arn }
}

output "service_secret_names" {
  description = "Secrets Manager name of each program's secret (the ExternalSecrets' remote keys)."
  value       = { for s in var.services : s => aws_secretsmanager_secret.this[s].name }
}

output "jwt_secret_arn" {
  description = "Secret holding jwt-secret."
  value       = aws_secretsmanager_secret.this["jwt"].arn
}

output "database_bootstrap_secret_arn" {
  description = "Secret holding each service role's password for the bootstrap job."
  value       = aws_secretsmanager_secret.this["database-bootstrap"].arn
}

output "secret_arns" {
  description = "Every secret this module made."
  value       = [for secret in aws_secretsmanager_secret.this : secret.arn]
}

output "kms_key_arn" {
  description = "Key of the secrets (and of the deploy parameter)."
  value       = module.key.arn
}
