# The EKS add-ons the overlays/aws manifests need:
# - vpc-cni with network policy enforcement on (the base's NetworkPolicies
#   deny by default; without this they would be accepted and ignored);
# - kube-proxy and CoreDNS (Services and cluster DNS: the programs reach
#   Consul by name);
# - aws-ebs-csi-driver (Consul's server StatefulSet asks for volumes);
# - metrics-server (the HorizontalPodAutoscalers' CPU metrics).
# The AWS Load Balancer Controller and the External Secrets Operator are
# Helm charts (installed by the deploy, scripts/aws-deploy.sh); their IAM
# roles are here (irsa.tf).

locals {
  addons_before_nodes = {
    vpc-cni = {
      role   = module.vpc_cni_irsa.role_arn
      config = jsonencode({ enableNetworkPolicy = "true" })
    }
    kube-proxy = {
      role   = null
      config = null
    }
  }
  addons_after_nodes = {
    coredns = {
      role   = null
      config = null
    }
    aws-ebs-csi-driver = {
      role   = module.ebs_csi_irsa.role_arn
      config = null
    }
    metrics-server = {
      role   = null
      config = null
    }
  }
}

resource "aws_eks_addon" "before_nodes" {
  for_each = local.addons_before_nodes

  cluster_name                = aws_eks_cluster.this.name
  addon_name                  = each.key
  addon_version               = lookup(var.addon_versions, each.key, null)
  service_account_role_arn    = each.value.role
  configuration_values        = each.value.config
  resolve_conflicts_on_create = "OVERWRITE"
  resolve_conflicts_on_update = "OVERWRITE"
}

resource "aws_eks_addon" "after_nodes" {
  for_each = local.addons_after_nodes

  cluster_name                = aws_eks_cluster.this.name
  addon_name                  = each.key
  addon_version               = lookup(var.addon_versions, each.key, null)
  service_account_role_arn    = each.value.role
  configuration_values        = each.value.config
  resolve_conflicts_on_create = "OVERWRITE"
  resolve_conflicts_on_update = "OVERWRITE"

  # These run as pods: they need nodes.
  depends_on = [aws_eks_node_group.this]
}
