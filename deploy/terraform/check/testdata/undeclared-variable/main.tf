# The faults: a misspelt variable (and so the real one is unused), and a
# data source nothing reads.
variable "instance_class" {
  description = "Instance class."
  type        = string
}

resource "aws_sns_topic" "this" {
  name = var.instance_clas
}

data "aws_region" "current" {}
