variable "name" {
  description = "Name prefix of the IAM role."
  type        = string
}

variable "oidc_provider_arn" {
  description = "ARN of the cluster's IAM OIDC provider."
  type        = string
}

variable "oidc_issuer" {
  description = "The cluster's OIDC issuer, without https:// (the condition keys' prefix)."
  type        = string
}

variable "namespace" {
  description = "Namespace of the Kubernetes service account allowed to assume the role."
  type        = string
}

variable "service_account" {
  description = "Name of the Kubernetes service account allowed to assume the role."
  type        = string
}

variable "policy_json" {
  description = "Inline policy of the role (null: none)."
  type        = string
  default     = null
}

variable "managed_policy_arns" {
  description = "AWS managed policies attached to the role."
  type        = list(string)
  default     = []
}
