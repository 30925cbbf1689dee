output "release_role_arn" {
  description = "Role of the image-pushing jobs (GitHub variable AWS_RELEASE_ROLE_ARN)."
  value       = aws_iam_role.release.arn
}

output "deploy_role_arn" {
  description = "Role of this environment's deploy jobs (GitHub environment variable AWS_DEPLOY_ROLE_ARN)."
  value       = aws_iam_role.deploy.arn
}
