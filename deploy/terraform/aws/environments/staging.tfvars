# Staging: the same shape as production, smaller and cheaper; in its own
# account (recommended), so it has its own registry and OIDC provider.
aws_region  = "eu-west-1"
environment = "staging"

single_nat_gateway     = true
node_instance_types    = ["t3.large"]
node_min_size          = 2
node_desired_size      = 2
node_max_size          = 4
db_instance_class      = "db.t4g.large" # 8 GiB: max_connections for the overlay's pools (TestRDSHoldsEveryPool)
db_multi_az            = false
db_deletion_protection = false
redis_node_type        = "cache.t4g.small"
redis_node_count       = 2

cluster_endpoint_public_access_cidrs = ["203.0.113.0/24"]
cluster_admin_principal_arns         = []

public_hostname = "staging.shop.example.com"
certificate_arn = "arn:aws:acm:eu-west-1:000000000000:certificate/00000000-0000-0000-0000-000000000000"

github_repository = "mercato-dev/mercato"

email_domain = "staging.shop.example.com"
email_from   = "Mercato <no-reply@staging.shop.example.com>"
alert_email  = "oncall@example.com"
