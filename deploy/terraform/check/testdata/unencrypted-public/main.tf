# The faults: a public, unencrypted database and a cache whose TLS is a
# variable someone can turn off.
variable "kms_key_arn" {
  description = "Key of the storage."
  type        = string
}

variable "transit_encryption" {
  description = "TLS to the cache."
  type        = bool
  default     = true
}

resource "aws_db_instance" "this" {
  identifier                  = "fixture"
  engine                      = "postgres"
  instance_class              = "db.t4g.micro"
  allocated_storage           = 20
  username                    = "admin"
  manage_master_user_password = true
  publicly_accessible         = true
  kms_key_id                  = var.kms_key_arn
  backup_retention_period     = 7
  deletion_protection         = true
}

resource "aws_elasticache_replication_group" "this" {
  replication_group_id       = "fixture"
  description                = "fixture"
  node_type                  = "cache.t4g.micro"
  at_rest_encryption_enabled = true
  transit_encryption_enabled = var.transit_encryption
  kms_key_id                 = var.kms_key_arn
  user_group_ids             = ["fixture"]
}
