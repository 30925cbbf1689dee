# Redis on ElastiCache: a replication group (cluster mode off: the
# programs use one address) with a primary and replicas over the zones,
# automatic failover, encrypted at rest with its own key and in transit
# (TLS required), and RBAC: one ACL user per program with only its
# commands and keys; the default user is off.

locals {
  family = "redis${split(".", var.engine_version)[0]}"
}

module "key" {
  source = "../kms-key"

  description = "${var.name} ElastiCache storage and snapshots, and its logs"
  alias       = "${var.name}-redis"
  log_groups  = "/aws/elasticache/${var.name}/*"
}

resource "aws_elasticache_subnet_group" "this" {
  name        = var.name
  description = "Private subnets of ${var.name}"
  subnet_ids  = var.subnet_ids
}

resource "aws_security_group" "redis" {
  name_prefix = "${var.name}-redis-"
  description = "Redis of ${var.name}: the cluster only"
  vpc_id      = var.vpc_id

  tags = {
    Name = "${var.name}-redis"
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "redis_from_cluster" {
  security_group_id            = aws_security_group.redis.id
  description                  = "Redis (TLS) from the EKS cluster"
  referenced_security_group_id = var.client_security_group_id
  ip_protocol                  = "tcp"
  from_port                    = 6379
  to_port                      = 6379
}

resource "aws_elasticache_parameter_group" "this" {
  name        = "${var.name}-${local.family}"
  family      = local.family
  description = "Mercato Redis"

  # The event stream and the outbox's published events live in Redis: it
  # must refuse writes when full rather than evict them.
  parameter {
    name  = "maxmemory-policy"
    value = "noeviction"
  }
}

# ElastiCache requires a user named "default" in every user group; this
# one can do nothing, so a client that does not log in can do nothing.
resource "random_password" "default_user" {
  length  = 40
  special = false
}

resource "aws_elasticache_user" "default" {
  user_id       = "${var.name}-default"
  user_name     = "default"
  engine        = "redis"
  access_string = "off -@all"

  authentication_mode {
    type      = "password"
    passwords = [random_password.default_user.result]
  }
}

resource "aws_elasticache_user" "service" {
  for_each = var.users

  user_id       = "${var.name}-${each.key}"
  user_name     = each.key
  engine        = "redis"
  access_string = each.value

  authentication_mode {
    type      = "password"
    passwords = [var.passwords[each.key]]
  }
}

resource "aws_elasticache_user_group" "this" {
  user_group_id = var.name
  engine        = "redis"
  user_ids      = concat([aws_elasticache_user.default.user_id], [for u in aws_elasticache_user.service : u.user_id])
}

resource "aws_cloudwatch_log_group" "redis" {
  for_each = toset(["slow-log", "engine-log"])

  name              = "/aws/elasticache/${var.name}/${each.key}"
  retention_in_days = var.log_retention_days
  kms_key_id        = module.key.arn
}

resource "aws_elasticache_replication_group" "this" {
  replication_group_id = var.name
  description          = "Mercato events, caches and rate limits"
  engine               = "redis"
  engine_version       = var.engine_version
  node_type            = var.node_type
  port                 = 6379
  parameter_group_name = aws_elasticache_parameter_group.this.name

  num_cache_clusters         = var.node_count
  automatic_failover_enabled = true
  multi_az_enabled           = true

  subnet_group_name  = aws_elasticache_subnet_group.this.name
  security_group_ids = [aws_security_group.redis.id]

  at_rest_encryption_enabled = true
  kms_key_id                 = module.key.arn
  transit_encryption_enabled = true
  transit_encryption_mode    = "required"
  user_group_ids             = [aws_elasticache_user_group.this.user_group_id]

  snapshot_retention_limit   = var.snapshot_retention_days
  snapshot_window            = "01:00-02:00"
  maintenance_window         = "sun:04:30-sun:05:30"
  auto_minor_version_upgrade = true
  apply_immediately          = false

  dynamic "log_delivery_configuration" {
    for_each = aws_cloudwatch_log_group.redis

    content {
      destination      = log_delivery_configuration.value.name
      destination_type = "cloudwatch-logs"
      log_format       = "json"
      log_type         = log_delivery_configuration.key
    }
  }
}
