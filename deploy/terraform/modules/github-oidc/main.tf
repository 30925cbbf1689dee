# GitHub Actions reaches AWS through OIDC: no access keys anywhere. Two
# roles, each assumable only by this repository's workflows:
# - release: pushes images; jobs on main or a v* tag;
# - deploy:  reads the deploy parameter and the cluster; jobs running in
#            the GitHub environment of this stack (production's requires
#            a reviewer), whose token's subject names that environment.

locals {
  issuer        = "token.actions.githubusercontent.com"
  provider_arn  = var.oidc_provider_arn == null ? aws_iam_openid_connect_provider.github[0].arn : var.oidc_provider_arn
  repo_subjects = "repo:${var.github_repository}"
}

resource "aws_iam_openid_connect_provider" "github" {
  count = var.oidc_provider_arn == null ? 1 : 0

  url            = "https://${local.issuer}"
  client_id_list = ["sts.amazonaws.com"]
}

data "aws_iam_policy_document" "release_assume" {
  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [local.provider_arn]
    }
    condition {
      test     = "StringEquals"
      variable = "${local.issuer}:aud"
      values   = ["sts.amazonaws.com"]
    }
    condition {
      test     = "StringLike"
      variable = "${local.issuer}:sub"
      values   = ["${local.repo_subjects}:ref:refs/heads/main", "${local.repo_subjects}:ref:refs/tags/v*"]
    }
  }
}

resource "aws_iam_role" "release" {
  name_prefix          = substr("${var.name}-gha-release-", 0, 38)
  description          = "GitHub Actions release jobs of ${var.github_repository}: push images"
  assume_role_policy   = data.aws_iam_policy_document.release_assume.json
  max_session_duration = 3600
}

data "aws_iam_policy_document" "release" {
  statement {
    sid       = "Login"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  statement {
    sid = "Push"
    actions = [
      "ecr:BatchCheckLayerAvailability",
      "ecr:BatchGetImage",
      "ecr:CompleteLayerUpload",
      "ecr:DescribeImages",
      "ecr:GetDownloadUrlForLayer",
      "ecr:InitiateLayerUpload",
      "ecr:PutImage",
      "ecr:UploadLayerPart",
    ]
    resources = values(var.ecr_repository_arns)
  }
}

resource "aws_iam_role_policy" "release" {
  name   = "push-images"
  role   = aws_iam_role.release.id
  policy = data.aws_iam_policy_document.release.json
}

data "aws_iam_policy_document" "deploy_assume" {
  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [local.provider_arn]
    }
    condition {
      test     = "StringEquals"
      variable = "${local.issuer}:aud"
      values   = ["sts.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "${local.issuer}:sub"
      values   = ["${local.repo_subjects}:environment:${var.environment}"]
    }
  }
}

resource "aws_iam_role" "deploy" {
  name_prefix          = substr("${var.name}-gha-deploy-", 0, 38)
  description          = "GitHub Actions ${var.environment} deploy jobs of ${var.github_repository}"
  assume_role_policy   = data.aws_iam_policy_document.deploy_assume.json
  max_session_duration = 3600
}

data "aws_iam_policy_document" "deploy" {
  statement {
    sid       = "Cluster"
    actions   = ["eks:DescribeCluster"]
    resources = [var.cluster_arn]
  }

  statement {
    sid       = "DeployConfiguration"
    actions   = ["ssm:GetParameter"]
    resources = [var.deploy_parameter_arn]
  }

  statement {
    sid       = "DecryptDeployConfiguration"
    actions   = ["kms:Decrypt"]
    resources = [var.deploy_kms_key_arn]
  }

  # Rollback checks that the release it returns to still has its images.
  statement {
    sid       = "ReleaseImagesExist"
    actions   = ["ecr:DescribeImages"]
    resources = values(var.ecr_repository_arns)
  }
}

resource "aws_iam_role_policy" "deploy" {
  name   = "deploy"
  role   = aws_iam_role.deploy.id
  policy = data.aws_iam_policy_document.deploy.json
}
