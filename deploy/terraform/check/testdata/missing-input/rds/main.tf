variable "identifier" {
  description = "Name of the topic."
  type        = string
}

resource "aws_sns_topic" "this" {
  name = var.identifier
}
