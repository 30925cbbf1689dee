# The fault: a misspelt variable (and so the real one is unused).
variable "instance_class" {
  description = "Instance class."
  type        = string
}

resource "aws_sns_topic" "this" {
  name = var.instance_clas
}
