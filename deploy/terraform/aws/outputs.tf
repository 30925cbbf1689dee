# What the manifests (overlays/aws) and the pipeline need. The same values
# are in the SSM parameter deploy_parameter_name, which the deploy reads;
# these are for people and for the first-time setup.

output "region" {
  description = "AWS region of the environment."
  value       = var.aws_region
}

output "cluster_name" {
  description = "EKS cluster (aws eks update-kubeconfig --name)."
  value       = module.eks.cluster_name
}

output "cluster_endpoint" {
  description = "Kubernetes API URL."
  value       = module.eks.cluster_endpoint
}

output "vpc_id" {
  description = "VPC of the environment (the load balancer controller's --aws-vpc-id)."
  value       = module.network.vpc_id
}

output "nat_public_ips" {
  description = "Addresses the cluster's egress comes from."
  value       = module.network.nat_public_ips
}

output "image_registry" {
  description = "ECR registry host; images are <registry>/<prefix>/<service>:<tag>."
  value       = module.ecr.registry
}

output "image_repositories" {
  description = "Image name the manifests use → ECR repository it is pushed to."
  value       = { for s in local.services : "mercato/${s}" => "${module.ecr.registry}/${module.ecr.repository_prefix}/${s}" }
}

output "database_endpoint" {
  description = "PostgreSQL host:port (RDS)."
  value       = "${module.rds.address}:${module.rds.port}"
}

output "database_master_secret_arn" {
  description = "RDS-managed secret of the master user (the bootstrap job's)."
  value       = module.rds.master_secret_arn
}

output "redis_address" {
  description = "Redis primary host:port (TLS): MERCATO_REDIS_ADDR."
  value       = "${module.elasticache.primary_endpoint}:${module.elasticache.port}"
}

output "service_secret_arns" {
  description = "Secrets Manager secret of each program (JSON whose keys are the files it reads)."
  value       = module.secrets.service_secret_arns
}

output "service_secret_names" {
  description = "Secrets Manager name of each program's secret."
  value       = module.secrets.service_secret_names
}

output "jwt_secret_arn" {
  description = "Secret holding jwt-secret."
  value       = module.secrets.jwt_secret_arn
}

output "database_bootstrap_secret_arn" {
  description = "Secret holding the service roles' passwords (the bootstrap job's)."
  value       = module.secrets.database_bootstrap_secret_arn
}

output "alb_security_group_id" {
  description = "Security group of the load balancer's listeners (Ingress annotation alb.ingress.kubernetes.io/security-groups)."
  value       = aws_security_group.alb.id
}

output "certificate_arn" {
  description = "Certificate of the HTTPS listener (Ingress annotation alb.ingress.kubernetes.io/certificate-arn)."
  value       = var.certificate_arn
}

output "public_url" {
  description = "URL the smoke check goes through."
  value       = "https://${var.public_hostname}"
}

output "load_balancer_controller_role_arn" {
  description = "IRSA role of kube-system/aws-load-balancer-controller."
  value       = module.eks.load_balancer_controller_role_arn
}

output "external_secrets_role_arn" {
  description = "IRSA role of the External Secrets Operator's service account."
  value       = module.external_secrets_irsa.role_arn
}

output "github_release_role_arn" {
  description = "GitHub repository variable AWS_RELEASE_ROLE_ARN."
  value       = module.github_oidc.release_role_arn
}

output "github_deploy_role_arn" {
  description = "GitHub environment variable AWS_DEPLOY_ROLE_ARN of this environment."
  value       = module.github_oidc.deploy_role_arn
}

output "deploy_parameter_name" {
  description = "SSM parameter with the deploy configuration (GitHub environment variable DEPLOY_PARAMETER)."
  value       = aws_ssm_parameter.deploy.name
}

output "ses_dkim_records" {
  description = "CNAME records (name → value) that verify email_domain for SES."
  value = {
    for t in aws_sesv2_email_identity.sender.dkim_signing_attributes[0].tokens :
    "${t}._domainkey.${var.email_domain}" => "${t}.dkim.amazonses.com"
  }
}
