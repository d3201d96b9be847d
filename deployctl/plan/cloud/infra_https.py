"""The load balancer part of the infra template: an Application Load Balancer whose HTTPS
listener holds an ACM certificate and whose HTTP listener redirects to it (301), unless the
config says `plain_http = true` (no certificate yet).

The certificate: an existing one (`certificate_arn`), or one CloudFormation requests for
`[proxy] hosts` and validates by DNS in the Route 53 zone `hosted_zone_id` (CloudFormation
writes the validation records there itself and waits until ACM issues it, so the stack is
ready only with a valid certificate). ACM renews a DNS-validated certificate on its own while
the records stay in the zone.
"""

from __future__ import annotations

from typing import Any, Callable

from ...config.models import InfraLoadBalancer
from .cfn import att, ingress, ref

# TLS 1.3 and 1.2 only, forward-secret AEAD ciphers (AWS's recommended policy for ALBs).
SSL_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"


def certificate_problem(lb: InfraLoadBalancer, proxy_hosts: list[str], where: str) -> str | None:
    """Why the load balancer cannot get its HTTPS listener, naming the keys; None when it can
    (or explicitly does without)."""
    if lb.plain_http or lb.certificate_arn is not None:
        return None
    if lb.hosted_zone_id is None:
        return (f"{where}: the load balancer's HTTPS listener needs a certificate: set certificate_arn (an ACM "
                "certificate), or hosted_zone_id (a Route 53 zone) with [proxy] hosts (the names it answers to); "
                "plain_http = true keeps HTTP only (not for a public site)")
    if not proxy_hosts:
        return (f"{where}.hosted_zone_id: a new certificate is requested for [proxy] hosts, which is empty: "
                "list the names the app answers to (e.g. hosts = [\"shop.example.com\"])")
    return None


def render_load_balancer(lb: InfraLoadBalancer, *, proxy_hosts: list[str], stack: str, proxy_port: int,
                         healthcheck: str, tags: Callable[[str], list]) -> tuple[dict, dict]:
    """(resources, outputs) of the load balancer, its security group, target group, listeners
    and certificate. tags(name): the template's tag list for a resource so named."""
    resources: dict[str, Any] = {}
    outputs: dict[str, Any] = {}
    rules = [ingress(lb.port, "HTTP from anywhere" + ("" if lb.plain_http else " (redirected to HTTPS)"),
                     cidr="0.0.0.0/0")]
    if not lb.plain_http:
        rules.append(ingress(lb.https_port, "HTTPS from anywhere", cidr="0.0.0.0/0"))
    resources["LoadBalancerSecurityGroup"] = {"Type": "AWS::EC2::SecurityGroup", "Properties": {
        "GroupDescription": f"{stack} load balancer", "VpcId": ref("Vpc"),
        "SecurityGroupIngress": rules, "Tags": tags("lb")}}
    resources["LoadBalancer"] = {"Type": "AWS::ElasticLoadBalancingV2::LoadBalancer", "DependsOn": "GatewayAttachment",
                                 "Properties": {
        "Type": "application", "Scheme": "internet-facing",
        "Subnets": [ref("PublicSubnetA"), ref("PublicSubnetB")],
        "SecurityGroups": [att("LoadBalancerSecurityGroup", "GroupId")], "Tags": tags("lb")}}
    resources["TargetGroup"] = {"Type": "AWS::ElasticLoadBalancingV2::TargetGroup", "Properties": {
        "VpcId": ref("Vpc"), "Port": proxy_port, "Protocol": "HTTP", "TargetType": "instance",
        "HealthCheckProtocol": "HTTP", "HealthCheckPath": healthcheck,
        "Matcher": {"HttpCode": "200"}, "HealthCheckIntervalSeconds": 10, "HealthyThresholdCount": 2,
        "UnhealthyThresholdCount": 3, "Tags": tags("proxy")}}
    forward = [{"Type": "forward", "TargetGroupArn": ref("TargetGroup")}]
    redirect = [{"Type": "redirect", "RedirectConfig": {
        "Protocol": "HTTPS", "Port": str(lb.https_port), "StatusCode": "HTTP_301"}}]
    resources["Listener"] = {"Type": "AWS::ElasticLoadBalancingV2::Listener", "Properties": {
        "LoadBalancerArn": ref("LoadBalancer"), "Port": lb.port, "Protocol": "HTTP",
        "DefaultActions": forward if lb.plain_http else redirect}}
    if lb.plain_http:
        return resources, outputs
    if lb.certificate_arn is not None:
        certificate: Any = lb.certificate_arn
    else:
        resources["Certificate"] = {"Type": "AWS::CertificateManager::Certificate", "Properties": {
            "DomainName": proxy_hosts[0], "ValidationMethod": "DNS",
            **({"SubjectAlternativeNames": proxy_hosts[1:]} if proxy_hosts[1:] else {}),
            "DomainValidationOptions": [{"DomainName": name, "HostedZoneId": lb.hosted_zone_id}
                                        for name in proxy_hosts],
            "Tags": tags("certificate")}}
        certificate = ref("Certificate")
        outputs["CertificateArn"] = {"Description": "The load balancer's ACM certificate", "Value": certificate}
    resources["HttpsListener"] = {"Type": "AWS::ElasticLoadBalancingV2::Listener", "Properties": {
        "LoadBalancerArn": ref("LoadBalancer"), "Port": lb.https_port, "Protocol": "HTTPS",
        "SslPolicy": SSL_POLICY, "Certificates": [{"CertificateArn": certificate}],
        "DefaultActions": forward}}
    return resources, outputs
