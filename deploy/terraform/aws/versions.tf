# Versions this configuration is written for. OpenTofu is what the
# repository builds and checks it with (tools/tofu); Terraform 1.9+ reads
# it the same way.
terraform {
  required_version = ">= 1.9.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.0"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
    tls = {
      source  = "hashicorp/tls"
      version = "~> 4.0"
    }
  }

  # State lives in S3 (encrypted with the bucket's KMS key, versioned, one
  # object per environment) and is locked with S3's own lock file. The
  # bucket is the account's, made once by hand (docs/deployment.md), and
  # given at init time, so no account or bucket name is written here:
  #   tofu init -backend-config=environments/production.s3.tfbackend
  backend "s3" {
    encrypt      = true
    use_lockfile = true
  }
}
