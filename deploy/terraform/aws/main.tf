# Mercato on AWS: one environment (staging, production) per state.
#
#   internet ─▶ ALB (HTTPS, security group alb) ─▶ gateway pods ─▶ service pods
#                                       (EKS managed nodes, private subnets)
#   pods ─▶ RDS PostgreSQL (Multi-AZ)  ·  ElastiCache Redis (TLS, ACL users)
#           (data subnets, no route out)
#   pods ─▶ NAT ─▶ internet (ECR, AWS APIs)
#
# The load balancer itself is made by the AWS Load Balancer Controller
# from the overlays/aws Ingress; this stack gives it its IAM role (IRSA)
# and the one security group that is open to the internet.

locals {
  prefix = "${var.name}-${var.environment}"
  azs    = slice(data.aws_availability_zones.available.names, 0, var.availability_zone_count)

  # The six programs: each has an image, a Redis user and a secret; all but
  # the gateway own a database (<service>_db, owned by the role of its name).
  services          = ["gateway", "user", "product", "order", "payment", "notification"]
  database_services = ["user", "product", "order", "payment", "notification"]

  # Secrets Manager paths: mercato/<environment>/<what>.
  secret_prefix = "${var.name}/${var.environment}"
}

module "network" {
  source = "../modules/network"

  name                    = local.prefix
  cidr                    = var.vpc_cidr
  availability_zones      = local.azs
  single_nat_gateway      = var.single_nat_gateway
  cluster_name            = local.prefix
  flow_log_retention_days = var.flow_log_retention_days
}

module "eks" {
  source = "../modules/eks"

  cluster_name                 = local.prefix
  kubernetes_version           = var.kubernetes_version
  subnet_ids                   = module.network.private_subnet_ids
  endpoint_public_access       = var.cluster_endpoint_public_access
  endpoint_public_access_cidrs = var.cluster_endpoint_public_access_cidrs
  log_retention_days           = var.cluster_log_retention_days
  node_instance_types          = var.node_instance_types
  node_capacity_type           = var.node_capacity_type
  node_min_size                = var.node_min_size
  node_desired_size            = var.node_desired_size
  node_max_size                = var.node_max_size
  node_disk_size_gib           = var.node_disk_size_gib
  admin_principal_arns = merge(
    { for i, arn in var.cluster_admin_principal_arns : "admin-${i}" => arn },
    { github-deploy = module.github_oidc.deploy_role_arn },
  )
}

# The one security group open to the internet: the load balancer's
# listeners. The controller attaches it to the ALB (the Ingress names it)
# and manages the backend rules from the ALB to the pods itself.
resource "aws_security_group" "alb" {
  name_prefix = "${local.prefix}-alb-"
  description = "Internet-facing listeners of the Mercato load balancer"
  vpc_id      = module.network.vpc_id

  tags = {
    Name = "${local.prefix}-alb"
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "alb_public" {
  for_each = {
    https = 443
    http  = 80 # redirected to HTTPS by the listener
  }

  security_group_id = aws_security_group.alb.id
  description       = "${upper(each.key)} from the internet"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = each.value
  to_port           = each.value
}

module "ecr" {
  source = "../modules/ecr"

  create              = var.create_ecr_repositories
  repository_prefix   = var.ecr_repository_prefix
  repositories        = local.services
  keep_release_images = var.ecr_keep_release_images
  keep_commit_images  = var.ecr_keep_commit_images
}

module "secrets" {
  source = "../modules/secrets"

  secret_prefix     = local.secret_prefix
  services          = local.services
  database_services = local.database_services
  database_host     = module.rds.address
  database_port     = module.rds.port
  smtp              = local.smtp
  alert_email       = var.alert_email
}

module "rds" {
  source = "../modules/rds"

  identifier               = local.prefix
  vpc_id                   = module.network.vpc_id
  subnet_ids               = module.network.data_subnet_ids
  client_security_group_id = module.eks.node_security_group_id
  postgres_version         = var.postgres_version
  instance_class           = var.db_instance_class
  allocated_storage_gib    = var.db_allocated_storage_gib
  max_allocated_storage    = var.db_max_allocated_storage_gib
  multi_az                 = var.db_multi_az
  backup_retention_days    = var.db_backup_retention_days
  deletion_protection      = var.db_deletion_protection
}

module "elasticache" {
  source = "../modules/elasticache"

  name                     = local.prefix
  vpc_id                   = module.network.vpc_id
  subnet_ids               = module.network.data_subnet_ids
  client_security_group_id = module.eks.node_security_group_id
  engine_version           = var.redis_engine_version
  node_type                = var.redis_node_type
  node_count               = var.redis_node_count
  users                    = local.redis_users
  passwords                = module.secrets.redis_passwords
}

module "github_oidc" {
  source = "../modules/github-oidc"

  name                 = local.prefix
  github_repository    = var.github_repository
  environment          = var.environment
  oidc_provider_arn    = var.github_oidc_provider_arn
  ecr_repository_arns  = module.ecr.repository_arns
  cluster_arn          = "arn:${data.aws_partition.current.partition}:eks:${var.aws_region}:${data.aws_caller_identity.current.account_id}:cluster/${local.prefix}"
  deploy_parameter_arn = "arn:${data.aws_partition.current.partition}:ssm:${var.aws_region}:${data.aws_caller_identity.current.account_id}:parameter/${local.secret_prefix}/deploy"
  deploy_kms_key_arn   = module.secrets.kms_key_arn
}
