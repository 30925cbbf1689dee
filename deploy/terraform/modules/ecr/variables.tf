variable "create" {
  description = "Create the repositories (false: another stack of this account owns them)."
  type        = bool
}

variable "repository_prefix" {
  description = "Repository names are <prefix>/<name>."
  type        = string
}

variable "repositories" {
  description = "Names of the repositories, one per image."
  type        = list(string)
}

variable "keep_release_images" {
  description = "Images tagged v* kept per repository."
  type        = number
}

variable "keep_commit_images" {
  description = "Images tagged sha-* kept per repository."
  type        = number
}

variable "untagged_expiry_days" {
  description = "Days an untagged image (an old manifest, a failed push) is kept."
  type        = number
  default     = 7
}
