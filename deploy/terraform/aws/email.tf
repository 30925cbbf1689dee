# Email through Amazon SES's SMTP interface (the notification service and
# Alertmanager speak SMTP). SES verifies the sending domain by the DKIM
# records in the output ses_dkim_records, which go into the domain's DNS.
# SMTP logins are an IAM user's access key, the one long-lived key of the
# stack, which SES's SMTP interface cannot do without: it may only send,
# only from the sending domain, and it lives only in Secrets Manager (and
# the encrypted state).

resource "aws_sesv2_email_identity" "sender" {
  email_identity = var.email_domain
}

resource "aws_iam_user" "smtp" {
  name = "${local.prefix}-ses-smtp"
  path = "/${var.name}/"
}

data "aws_iam_policy_document" "smtp" {
  statement {
    actions   = ["ses:SendRawEmail"]
    resources = [aws_sesv2_email_identity.sender.arn]
    condition {
      test     = "StringLike"
      variable = "ses:FromAddress"
      values   = ["*@${var.email_domain}"]
    }
  }
}

resource "aws_iam_user_policy" "smtp" {
  name   = "send-email"
  user   = aws_iam_user.smtp.name
  policy = data.aws_iam_policy_document.smtp.json
}

resource "aws_iam_access_key" "smtp" {
  user = aws_iam_user.smtp.name
}

locals {
  smtp = {
    address  = "email-smtp.${var.aws_region}.amazonaws.com:587"
    from     = var.email_from
    username = aws_iam_access_key.smtp.id
    password = aws_iam_access_key.smtp.ses_smtp_password_v4
  }
}
