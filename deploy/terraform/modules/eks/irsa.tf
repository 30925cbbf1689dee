# IAM roles of the cluster's own controllers, each assumable by one service
# account only (modules/irsa).

locals {
  oidc_issuer = replace(aws_eks_cluster.this.identity[0].oidc[0].issuer, "https://", "")
}

module "vpc_cni_irsa" {
  source = "../irsa"

  name                = "${var.cluster_name}-vpc-cni"
  oidc_provider_arn   = aws_iam_openid_connect_provider.cluster.arn
  oidc_issuer         = local.oidc_issuer
  namespace           = "kube-system"
  service_account     = "aws-node"
  managed_policy_arns = ["arn:${local.partition}:iam::aws:policy/AmazonEKS_CNI_Policy"]
}

module "ebs_csi_irsa" {
  source = "../irsa"

  name                = "${var.cluster_name}-ebs-csi"
  oidc_provider_arn   = aws_iam_openid_connect_provider.cluster.arn
  oidc_issuer         = local.oidc_issuer
  namespace           = "kube-system"
  service_account     = "ebs-csi-controller-sa"
  managed_policy_arns = ["arn:${local.partition}:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy"]
}

module "load_balancer_controller_irsa" {
  source = "../irsa"

  name              = "${var.cluster_name}-lb-controller"
  oidc_provider_arn = aws_iam_openid_connect_provider.cluster.arn
  oidc_issuer       = local.oidc_issuer
  namespace         = "kube-system"
  service_account   = "aws-load-balancer-controller"
  policy_json       = data.aws_iam_policy_document.load_balancer_controller.json
}
