# The platform's secrets in Secrets Manager, encrypted with a key of their
# own. Each secret is one JSON object whose keys are the keys of the
# Kubernetes Secret overlays/aws names (the file names the programs read
# under /run/secrets/mercato, config.SecretVar's MERCATO_<NAME>_FILE): the
# External Secrets Operator copies each into its Secret key for key
# (deploy/terraform/aws/kubernetes/external-secrets.yaml).
#
#   <prefix>/<service>           -> <service>-secrets: database-url (not the
#                                   gateway's), redis-password, consul-token,
#                                   and admin-password (user),
#                                   idempotency-hash-key (order), webhook-secret
#                                   (payment), smtp-username and smtp-password
#                                   (notification)
#   <prefix>/jwt                 -> mercato-jwt: jwt-secret
#   <prefix>/prometheus          -> prometheus-secrets: consul-prometheus-token
#   <prefix>/grafana             -> grafana-secrets: admin-password
#   <prefix>/alertmanager        -> alertmanager-config: alertmanager.yml
#   <prefix>/database-bootstrap  -> database-bootstrap: <role>: password, for
#                                   the job that makes the roles and databases
#
# The consul-token values are the SecretIDs the services' Consul tokens are
# created with (docs/deployment.md). The values are generated here once
# (random_password) and so are in the Terraform state too: the state bucket
# is encrypted and readable by the platform team only. Rotating one is
# `tofu apply -replace=...` of its random_password, then a rollout.

locals {
  database_url = {
    for s in var.database_services : s => format(
      # TLS verified against RDS's CA bundle, the ConfigMap rds-ca-bundle
      # that overlays/aws mounts there (rds-ca.yaml).
      "postgres://%s_db:%s@%s:%d/%s_db?sslmode=verify-full&sslrootcert=/etc/mercato/rds-ca/global-bundle.pem",
      s, random_password.database[s].result, var.database_host, var.database_port, s,
    )
  }

  # What each program's secret holds beyond the common keys.
  extra = {
    user    = { admin-password = random_password.admin.result }
    order   = { idempotency-hash-key = random_password.idempotency_hash_key.result }
    payment = { webhook-secret = random_password.webhook.result }
    notification = {
      smtp-username = var.smtp.username
      smtp-password = var.smtp.password
    }
  }

  # Alertmanager mails alerts through the same SES interface.
  alertmanager_config = yamlencode({
    global = {
      smtp_smarthost     = var.smtp.address
      smtp_from          = var.smtp.from
      smtp_auth_username = var.smtp.username
      smtp_auth_password = var.smtp.password
      smtp_require_tls   = true
    }
    route = {
      receiver        = "email"
      group_by        = ["alertname", "service"]
      group_wait      = "30s"
      group_interval  = "5m"
      repeat_interval = "4h"
    }
    receivers = [{
      name          = "email"
      email_configs = [{ to = var.alert_email, send_resolved = true }]
    }]
  })

  service_secret = {
    for s in var.services : s => merge(
      {
        redis-password = random_password.redis[s].result
        consul-token   = random_uuid.consul_token[s].result
      },
      contains(var.database_services, s) ? { database-url = local.database_url[s] } : {},
      lookup(local.extra, s, {}),
    )
  }
}

module "key" {
  source = "../kms-key"

  description = "${var.secret_prefix} application secrets"
  alias       = "${replace(var.secret_prefix, "/", "-")}-secrets"
}

# Letters and digits only: every value goes into URLs, ACL users or
# headers unescaped. 40 of them are 238 bits.
resource "random_password" "database" {
  for_each = toset(var.database_services)

  length  = 40
  special = false
}

resource "random_password" "redis" {
  for_each = toset(var.services)

  length  = 40
  special = false
}

resource "random_uuid" "consul_token" {
  for_each = toset(var.services)
}

resource "random_uuid" "consul_prometheus_token" {}

resource "random_password" "jwt" {
  length  = 64
  special = false
}

resource "random_password" "webhook" {
  length  = 64
  special = false
}

resource "random_password" "idempotency_hash_key" {
  length  = 64
  special = false
}

resource "random_password" "admin" {
  length  = 32
  special = false
}

resource "random_password" "grafana_admin" {
  length  = 32
  special = false
}

# Every secret, by the last part of its name: what it holds and why.
locals {
  secrets = merge(
    { for s in var.services : s => {
      description = "Secrets of the ${s} program (keys are the files it reads)"
      value       = local.service_secret[s]
    } },
    {
      jwt = {
        description = "HS256 key of the access tokens, the same for every program"
        value       = { jwt-secret = random_password.jwt.result }
      }
      prometheus = {
        description = "Prometheus's Consul token (components/monitoring)"
        value       = { consul-prometheus-token = random_uuid.consul_prometheus_token.result }
      }
      grafana = {
        description = "Grafana's admin password (components/grafana)"
        value       = { admin-password = random_password.grafana_admin.result }
      }
      alertmanager = {
        description = "Alertmanager's configuration, with its SMTP login"
        value       = { "alertmanager.yml" = local.alertmanager_config }
      }
      database-bootstrap = {
        description = "Password of each service role, for the job that creates the roles and databases"
        value       = { for s in var.database_services : "${s}_db" => random_password.database[s].result }
      }
    },
  )
}

# for_each over the names only: the values hold sensitive values, which
# for_each must not be given.
resource "aws_secretsmanager_secret" "this" {
  for_each = toset(keys(local.secrets))

  name                    = "${var.secret_prefix}/${each.key}"
  description             = local.secrets[each.key].description
  kms_key_id              = module.key.arn
  recovery_window_in_days = var.recovery_window_days
}

resource "aws_secretsmanager_secret_version" "this" {
  for_each = toset(keys(local.secrets))

  secret_id     = aws_secretsmanager_secret.this[each.key].id
  secret_string = jsonencode(local.secrets[each.key].value)
}
