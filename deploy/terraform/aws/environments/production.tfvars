# Production. Values that name this account's resources (the certificate,
# the admins) are placeholders: replace them before the first apply.
aws_region  = "eu-west-1"
environment = "production"

cluster_endpoint_public_access_cidrs = ["203.0.113.0/24"] # the deploy runners' egress range (TEST-NET-3 placeholder)
cluster_admin_principal_arns         = []                 # e.g. the platform team's SSO role ARN

public_hostname = "shop.example.com"
certificate_arn = "arn:aws:acm:eu-west-1:000000000000:certificate/00000000-0000-0000-0000-000000000000"

github_repository = "mercato-dev/mercato"

email_domain = "shop.example.com"
email_from   = "Mercato <no-reply@shop.example.com>"
alert_email  = "oncall@example.com"
