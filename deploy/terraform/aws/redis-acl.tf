# ElastiCache ACL users, one per program, each allowed only the commands on
# the keys its code uses. These are the rules of localinfra.PlatformAccess
# (shared/localinfra/acl.go), which make run, compose and the tests give
# their Redis; deploy/terraform/check fails when the two differ. A rule in
# parentheses is a selector: its commands on its keys only. ElastiCache
# users start with no keys and no channels, so "on -@all" is the whole
# reset.
locals {
  redis_users = {
    user         = "on -@all +ping +hello +auth (+xadd +xinfo|groups +xpending +xtrim ~events) (+set +exists ~auth:revoked:*) (+evalsha +eval +time +hmget +hincrby +hset +pexpire +del +exists ~login:fail:*)"
    product      = "on -@all +ping +hello +auth (+xadd +xinfo|groups +xpending +xtrim ~events) (+exists %R~auth:revoked:*) (+get +set +incr +incrby ~catalogue:*)"
    order        = "on -@all +ping +hello +auth (+xadd +xinfo|groups +xpending +xtrim ~events) (+exists %R~auth:revoked:*) (+xgroup|create +xreadgroup +xautoclaim +xpending +xack +xinfo|groups ~events) (+xadd ~events.dead) (+multi +exec +discard)"
    payment      = "on -@all +ping +hello +auth (+xadd +xinfo|groups +xpending +xtrim ~events) (+exists %R~auth:revoked:*) (+xgroup|create +xreadgroup +xautoclaim +xpending +xack +xinfo|groups ~events) (+xadd ~events.dead) (+multi +exec +discard)"
    notification = "on -@all +ping +hello +auth (+exists %R~auth:revoked:*) (+xgroup|create +xreadgroup +xautoclaim +xpending +xack +xinfo|groups ~events) (+xadd ~events.dead) (+multi +exec +discard)"
    gateway      = "on -@all +ping +hello +auth (+exists %R~auth:revoked:*) (+evalsha +eval +get +set +time ~rate:ratelimit:*)"
  }
}
