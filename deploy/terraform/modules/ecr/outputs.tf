output "registry" {
  description = "Registry host of this account and region (where the repositories are, whichever stack made them)."
  value       = "${data.aws_caller_identity.current.account_id}.dkr.ecr.${data.aws_region.current.region}.amazonaws.com"
}

output "repository_arns" {
  description = "ARNs of the repositories by image name (computed from the names when another stack owns them)."
  value = {
    for r in var.repositories : r => (
      var.create
      ? aws_ecr_repository.this[r].arn
      : "arn:${data.aws_partition.current.partition}:ecr:${data.aws_region.current.region}:${data.aws_caller_identity.current.account_id}:repository/${var.repository_prefix}/${r}"
    )
  }
}

output "repository_prefix" {
  description = "Repository names are <prefix>/<image>."
  value       = var.repository_prefix
}
