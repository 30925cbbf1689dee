# The fault: the database's security group admits the whole internet.
variable "kms_key_arn" {
  description = "Key of the storage."
  type        = string
}

resource "aws_security_group" "db" {
  name_prefix = "db-"
  description = "database"
  vpc_id      = "vpc-0123"
}

resource "aws_vpc_security_group_ingress_rule" "db_from_anywhere" {
  security_group_id = aws_security_group.db.id
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 5432
  to_port           = 5432
}

resource "aws_db_instance" "this" {
  identifier                  = "fixture"
  engine                      = "postgres"
  instance_class              = "db.t4g.micro"
  allocated_storage           = 20
  username                    = "admin"
  manage_master_user_password = true
  publicly_accessible         = false
  storage_encrypted           = true
  kms_key_id                  = var.kms_key_arn
  backup_retention_period     = 7
  deletion_protection         = true
  vpc_security_group_ids      = [aws_security_group.db.id]
}
