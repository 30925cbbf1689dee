variable "name" {
  description = "Name prefix of the roles."
  type        = string
}

variable "github_repository" {
  description = "owner/name of the repository whose workflows may assume the roles."
  type        = string
}

variable "environment" {
  description = "GitHub environment whose jobs may assume the deploy role (required reviewers are set on it in GitHub)."
  type        = string
}

variable "oidc_provider_arn" {
  description = "Existing GitHub OIDC provider of the account; null creates it."
  type        = string
}

variable "ecr_repository_arns" {
  description = "Repositories the release role pushes to, by image name."
  type        = map(string)
}

variable "cluster_arn" {
  description = "EKS cluster the deploy role describes (its Kubernetes access is an access entry)."
  type        = string
}

variable "deploy_parameter_arn" {
  description = "SSM parameter holding the deploy configuration."
  type        = string
}

variable "deploy_kms_key_arn" {
  description = "Key the deploy parameter is encrypted with."
  type        = string
}
