# The faults: a password written into the code, and an account id.
variable "kms_key_arn" {
  description = "Key of the storage."
  type        = string
}

locals {
  arn = "arn:aws:iam::123456789012:role/deployer"
}

resource "aws_db_instance" "this" {
  identifier              = "fixture"
  engine                  = "postgres"
  instance_class          = "db.t4g.micro"
  allocated_storage       = 20
  username                = "admin"
  password                = "hunter2-hunter2"
  publicly_accessible     = false
  storage_encrypted       = true
  kms_key_id              = var.kms_key_arn
  backup_retention_period = 7
  deletion_protection     = true
}

output "role" {
  description = "A role."
  value       = local.arn
}
