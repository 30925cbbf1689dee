# The fault: the module's required input is misspelt, so it is both
# missing and unknown.
module "db" {
  source = "./rds"

  identifer = "fixture"
}
