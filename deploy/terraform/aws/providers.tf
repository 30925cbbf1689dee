provider "aws" {
  region = var.aws_region

  # Every resource that takes tags gets these; modules add a Name.
  default_tags {
    tags = merge(var.tags, {
      "app.kubernetes.io/part-of" = var.name
      "mercato.dev/environment"   = var.environment
      "mercato.dev/managed-by"    = "opentofu"
    })
  }
}

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_availability_zones" "available" {
  state = "available"
  filter {
    name   = "opt-in-status"
    values = ["opt-in-not-required"]
  }
}
