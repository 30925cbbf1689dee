# One repository per image: tags immutable (a release tag always names the
# same image, which rollback relies on), scanned on push, encrypted with a
# key of their own, old commit images expired.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  repositories = var.create ? toset(var.repositories) : toset([])
}

module "key" {
  source = "../kms-key"
  count  = var.create ? 1 : 0

  description = "${var.repository_prefix} container images"
  alias       = "${var.repository_prefix}-ecr"
}

resource "aws_ecr_repository" "this" {
  for_each = local.repositories

  name                 = "${var.repository_prefix}/${each.key}"
  image_tag_mutability = "IMMUTABLE"

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "KMS"
    kms_key         = module.key[0].arn
  }
}

resource "aws_ecr_lifecycle_policy" "this" {
  for_each = aws_ecr_repository.this

  repository = each.value.name
  policy = jsonencode({
    rules = [
      {
        rulePriority = 1
        description  = "Expire untagged images"
        selection = {
          tagStatus   = "untagged"
          countType   = "sinceImagePushed"
          countUnit   = "days"
          countNumber = var.untagged_expiry_days
        }
        action = { type = "expire" }
      },
      {
        rulePriority = 2
        description  = "Keep the newest release images"
        selection = {
          tagStatus     = "tagged"
          tagPrefixList = ["v"]
          countType     = "imageCountMoreThan"
          countNumber   = var.keep_release_images
        }
        action = { type = "expire" }
      },
      {
        rulePriority = 3
        description  = "Keep the newest commit images"
        selection = {
          tagStatus     = "tagged"
          tagPrefixList = ["sha-"]
          countType     = "imageCountMoreThan"
          countNumber   = var.keep_commit_images
        }
        action = { type = "expire" }
      },
    ]
  })
}
