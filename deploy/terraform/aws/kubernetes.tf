# What the cluster side needs from this stack, beyond the cluster itself:
# the External Secrets Operator's role (it copies this environment's
# secrets into Kubernetes Secrets) and the deploy configuration the
# release workflow renders overlays/aws with.

data "aws_iam_policy_document" "external_secrets" {
  statement {
    sid     = "ReadThisEnvironmentsSecrets"
    actions = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
    resources = concat(
      module.secrets.secret_arns,
      [module.rds.master_secret_arn],
    )
  }

  statement {
    sid       = "Decrypt"
    actions   = ["kms:Decrypt"]
    resources = [module.secrets.kms_key_arn, module.rds.kms_key_arn]
  }
}

module "external_secrets_irsa" {
  source = "../modules/irsa"

  name              = "${local.prefix}-external-secrets"
  oidc_provider_arn = module.eks.oidc_provider_arn
  oidc_issuer       = module.eks.oidc_issuer
  namespace         = var.external_secrets_service_account.namespace
  service_account   = var.external_secrets_service_account.name
  policy_json       = data.aws_iam_policy_document.external_secrets.json
}

# Everything the deploy needs to know about this environment, none of it
# secret, in one parameter the deploy role can read
# (scripts/aws-deploy.sh): so a change here reaches the next deploy
# without anyone copying outputs into GitHub.
locals {
  deploy_config = {
    environment                       = var.environment
    region                            = var.aws_region
    cluster_name                      = module.eks.cluster_name
    vpc_id                            = module.network.vpc_id
    vpc_cidr                          = module.network.vpc_cidr
    data_cidr                         = module.network.data_cidr
    public_url                        = "https://${var.public_hostname}"
    public_hostname                   = var.public_hostname
    certificate_arn                   = var.certificate_arn
    alb_security_group_id             = aws_security_group.alb.id
    image_registry                    = module.ecr.registry
    image_repository_prefix           = module.ecr.repository_prefix
    redis_address                     = "${module.elasticache.primary_endpoint}:${module.elasticache.port}"
    smtp_address                      = local.smtp.address
    email_from                        = var.email_from
    database_host                     = module.rds.address
    database_master_secret_arn        = module.rds.master_secret_arn
    secret_prefix                     = local.secret_prefix
    load_balancer_controller_role_arn = module.eks.load_balancer_controller_role_arn
    external_secrets_role_arn         = module.external_secrets_irsa.role_arn
  }
}

resource "aws_ssm_parameter" "deploy" {
  name        = "/${local.secret_prefix}/deploy"
  description = "Deploy configuration of ${local.prefix} (endpoints, ARNs; no secrets)"
  type        = "SecureString"
  key_id      = module.secrets.kms_key_arn
  value       = jsonencode(local.deploy_config)
}
