variable "description" {
  description = "What the key encrypts."
  type        = string
}

variable "alias" {
  description = "Alias of the key, without alias/."
  type        = string
}

variable "log_groups" {
  description = "Name pattern of the CloudWatch log groups (e.g. /aws/eks/<cluster>/*) that may encrypt with the key; null: none."
  type        = string
  default     = null
}
