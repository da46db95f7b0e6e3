"""What a student's server can reach, evaluated from the course namespace's NetworkPolicy
objects (`netpol_eval`: the API's egress semantics, since no cluster runs here)."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from deployer_svc.backends import k8s_hub_config as hc
from deployer_svc.backends import k8s_manifests as km
from deployer_svc.backends.base import HubDeployment
from jhaas_launcher.testing import sample_spec

sys.path.insert(0, str(Path(__file__).parent))
from netpol_eval import Destination, Pod, connection_allowed, egress_allowed, ingress_allowed

pytestmark = pytest.mark.unit

LICENCE = km.EgressDestination(name="matlab-licence", cidr="10.20.30.40/32", ports=(27000,))
S3 = km.EgressDestination(name="campus-s3", cidr="192.168.50.0/24", ports=(443, 9000))
SETTINGS = km.K8sSettings(domain="hubs.example.org", egress_allowed=(LICENCE, S3))
NAMESPACE = "jhaas-local-ds101"


def hub() -> HubDeployment:
    return HubDeployment(
        deployment_id="dep-1",
        request_id="req-1",
        slug="ds101",
        configuration=sample_spec(slug="ds101"),
        api_token="t" * 32,
    )


@functools.cache
def policies() -> list[dict[str, Any]]:
    """The course's policies under SETTINGS, each valid against the Kubernetes schema."""
    made = km.make_network_policies(hub(), SETTINGS)
    for policy in made:
        kubernetes_validate.validate(policy, "1.31", strict=True)
    return made


STUDENT = Pod(NAMESPACE, km.labels(hub(), SETTINGS, hc.SINGLEUSER_COMPONENT))
COREDNS = Pod("kube-system", {"k8s-app": "kube-dns"})
OTHER_COURSE = Pod("jhaas-local-ml202", {"app.kubernetes.io/component": "singleuser-server"})


def student_reaches(ip: str, port: int, protocol: str = "TCP", pod: Pod | None = None) -> bool:
    return egress_allowed(policies(), STUDENT, Destination(ip, port, protocol, pod))


def test_private_ranges_are_blocked_and_the_internet_is_open() -> None:
    assert not student_reaches("10.1.2.3", 443)
    assert not student_reaches("172.20.0.5", 5432)
    assert not student_reaches("192.168.1.1", 22)
    assert not student_reaches("169.254.169.254", 80)  # cloud metadata: node credentials
    assert not student_reaches("169.254.170.2", 80)  # ECS task metadata, link-local
    assert not student_reaches("100.64.0.10", 443)  # carrier-grade NAT
    assert student_reaches("8.8.8.8", 443)
    assert student_reaches("140.82.112.3", 22)  # git over ssh to the internet


def test_an_allowed_destination_is_open_on_its_ports_only() -> None:
    assert student_reaches("10.20.30.40", 27000)
    assert not student_reaches("10.20.30.40", 27001)
    assert not student_reaches("10.20.30.40", 22)
    assert not student_reaches("10.20.30.41", 27000)  # its neighbour stays blocked
    assert student_reaches("192.168.50.7", 9000)
    assert not student_reaches("192.168.50.7", 27000)
    assert not student_reaches("10.20.30.40", 27000, "UDP")


def test_without_the_setting_the_licence_server_is_blocked() -> None:
    plain = km.make_network_policies(hub(), km.K8sSettings(domain="hubs.example.org"))
    assert not egress_allowed(plain, STUDENT, Destination("10.20.30.40", 27000))


def test_dns_keeps_working() -> None:
    assert student_reaches("10.96.0.10", 53, "UDP", COREDNS)  # kube-dns in kube-system
    assert student_reaches("10.96.0.10", 53, "TCP", COREDNS)
    assert student_reaches("169.254.20.10", 53, "UDP")  # NodeLocal DNSCache
    assert student_reaches("192.168.0.2", 53, "UDP")  # a resolver on the node network
    assert not student_reaches("10.96.0.10", 80, "TCP", COREDNS)  # only DNS in kube-system


def test_other_courses_and_the_hub_api() -> None:
    assert not student_reaches("10.244.3.7", 8888, pod=OTHER_COURSE)
    hub_pod = Pod(NAMESPACE, km.labels(hub(), SETTINGS, "hub"))
    assert student_reaches("10.244.1.2", 8081, pod=hub_pod)
    assert not student_reaches("10.244.1.2", 8001, pod=hub_pod)


def test_operator_internal_cidrs_are_blocked_too() -> None:
    settings = km.K8sSettings(domain="hubs.example.org", internal_cidrs=("34.118.224.0/20",))
    made = km.make_network_policies(hub(), settings)
    assert not egress_allowed(made, STUDENT, Destination("34.118.230.1", 443))
    assert egress_allowed(made, STUDENT, Destination("34.119.0.1", 443))


def test_the_evaluator_can_say_yes_and_no() -> None:
    """The evaluator itself: a pod no policy selects is open; a deny-all closes it."""
    free = Pod("elsewhere", {"app": "x"})
    assert egress_allowed(policies(), free, Destination("10.1.2.3", 443))
    deny = [p for p in policies() if p["metadata"]["name"] == "default-deny"]
    assert not egress_allowed(deny, STUDENT, Destination("8.8.8.8", 443))


HUB = Pod(NAMESPACE, km.labels(hub(), SETTINGS, "hub"))
PROXY = Pod(NAMESPACE, km.labels(hub(), SETTINGS, "proxy"))
CONTROLLER = Pod("ingress-nginx", {"app.kubernetes.io/name": "ingress-nginx"})
PLACEHOLDER = Pod(NAMESPACE, km.labels(hub(), SETTINGS, km.PLACEHOLDERS))


def connects(source: Pod, to: Pod, port: int) -> bool:
    return connection_allowed(policies(), source, to, port)


def test_hub_and_proxy_traffic_flows() -> None:
    """Every connection a working hub needs, both ends' policies considered."""
    assert connects(CONTROLLER, PROXY, hc.PROXY_HTTP_PORT)  # the browser, via the Ingress
    assert connects(PROXY, HUB, hc.HUB_PORT)  # /hub/ pages
    assert connects(PROXY, STUDENT, hc.SINGLEUSER_PORT)  # /user/<name>/ to the server
    assert connects(HUB, PROXY, hc.PROXY_API_PORT)  # the hub adds routes
    assert connects(HUB, STUDENT, hc.SINGLEUSER_PORT)  # the hub checks a server
    assert connects(STUDENT, HUB, hc.HUB_PORT)  # the server's OAuth, activity reports
    assert connects(HUB, HUB, hc.HUB_PORT)  # the idle culler in the hub's pod
    # The hub reaches the Kubernetes API (KubeSpawner) on any address but the metadata.
    assert egress_allowed(policies(), HUB, Destination("10.96.0.1", 443))
    assert not egress_allowed(policies(), HUB, Destination("169.254.169.254", 80))


def test_what_no_one_else_reaches() -> None:
    assert not connects(CONTROLLER, HUB, hc.HUB_PORT)  # only through the proxy
    assert not connects(CONTROLLER, STUDENT, hc.SINGLEUSER_PORT)
    assert not connects(STUDENT, PROXY, hc.PROXY_API_PORT)  # a student cannot add routes
    assert not connects(STUDENT, STUDENT, hc.SINGLEUSER_PORT)  # nor open a neighbour's server
    assert not connects(OTHER_COURSE, STUDENT, hc.SINGLEUSER_PORT)
    assert not connects(OTHER_COURSE, HUB, hc.HUB_PORT)
    assert not connects(PLACEHOLDER, HUB, hc.HUB_PORT)  # placeholders: no traffic at all
    assert not ingress_allowed(policies(), STUDENT, PROXY, hc.PROXY_HTTP_PORT)
