variable "secret_prefix" {
  description = "Path prefix of every secret (<name>/<environment>)."
  type        = string
}

variable "services" {
  description = "The programs: each gets a secret <prefix>/<service> and a Redis password."
  type        = list(string)
}

variable "database_services" {
  description = "The programs that own a database (<service>_db, role <service>_db)."
  type        = list(string)
}

variable "database_host" {
  description = "PostgreSQL host the database URLs name."
  type        = string
}

variable "database_port" {
  description = "PostgreSQL port the database URLs name."
  type        = number
}

variable "smtp" {
  description = "SES SMTP endpoint (host:port), sender, and the SMTP credentials of the notification service and Alertmanager."
  type = object({
    address  = string
    from     = string
    username = string
    password = string
  })
  sensitive = true
}

variable "alert_email" {
  description = "Where Alertmanager sends alerts."
  type        = string
}

variable "recovery_window_days" {
  description = "Days a deleted secret can still be restored."
  type        = number
  default     = 30
}
