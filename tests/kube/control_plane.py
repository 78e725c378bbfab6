"""A Kubernetes control plane of its own on loopback, for installing the chart into: etcd, kube-apiserver,
kube-controller-manager, kube-scheduler (v1.37.2, built from components/) and kwok's fake nodes, one per zone.

Hand-written rather than kwokctl: kwokctl downloads its binaries and images from hosts not reachable here. Nothing
runs in a pod (kwok only writes pod status), so what this proves is what the API server admits (server-side apply
with strict field validation, its defaulting), the hooks' order, and the controllers' and scheduler's view of the
release (Jobs complete, Deployments available, pods bound to nodes across zones). Every process it starts is stopped
by `stop`, and dies with the test process if that is killed.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import ipaddress
import json
import secrets
import signal
import socket
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

STAGES = Path(__file__).with_name("fake-node-stages.yaml")
ZONES = ("zone-a", "zone-b", "zone-c")
SERVICE_RANGE = "10.96.0.0/16"
STOP_TIMEOUT_S = 20
PR_SET_PDEATHSIG = 1


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _die_with_parent() -> None:
    """In the child: killed when the test process dies, however it dies."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _pem_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())  # fmt: skip


def _write_pki(directory: Path) -> None:
    """A CA, the API server's certificate for 127.0.0.1, and the service-account signing key pair."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-check-ca")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))  # fmt: skip
    server_key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.IPAddress(ipaddress.ip_address("10.96.0.1")),
             x509.DNSName("localhost"), x509.DNSName("kubernetes.default.svc")]  # fmt: skip
    server = (x509.CertificateBuilder()
              .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
              .issuer_name(ca_name).public_key(server_key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
              .add_extension(x509.SubjectAlternativeName(names), critical=False)
              .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
              .sign(ca_key, hashes.SHA256()))  # fmt: skip
    signing = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (directory / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (directory / "apiserver.crt").write_bytes(server.public_bytes(serialization.Encoding.PEM))
    (directory / "apiserver.key").write_bytes(_pem_key(server_key))
    (directory / "sa.key").write_bytes(_pem_key(signing))
    (directory / "sa.pub").write_bytes(signing.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))  # fmt: skip


class ControlPlane:
    """Started by `start`, stopped by `stop`; `kubeconfig` is the admin's."""

    def __init__(self, programs: dict[str, Path], directory: Path, nodes: int = 3) -> None:
        self.programs = programs
        self.directory = directory
        self.nodes = nodes
        self.processes: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.ports = {name: _free_port() for name in ("etcd", "etcd-peer", "apiserver", "controller", "scheduler")}
        self.server = f"https://127.0.0.1:{self.ports['apiserver']}"
        self.kubeconfig = directory / "admin.kubeconfig"
        self.timings: dict[str, float] = {}
        self._token = ""

    # --- processes -------------------------------------------------------------------------------------------------
    def _start(self, name: str, *args: str) -> None:
        with (self.directory / f"{name}.log").open("wb") as log:
            process = subprocess.Popen([str(self.programs[name]), *args], stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, cwd=self.directory, start_new_session=True,
                                       preexec_fn=_die_with_parent)  # fmt: skip  # noqa: PLW1509 - see _die_with_parent
        self.processes.append((name, process))

    def stop(self) -> None:
        """Newest first (the API server keeps etcd while it stops); SIGKILL after STOP_TIMEOUT_S."""
        for _name, process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self.processes.clear()

    def _wait(self, what: str, ready: Callable[[], bool], timeout_s: float) -> None:
        started = time.monotonic()
        last: Exception | None = None
        while time.monotonic() - started < timeout_s:
            for name, process in self.processes:
                if process.poll() is not None:
                    tail = (self.directory / f"{name}.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"{name} exited ({process.returncode}) while waiting for {what}:\n{tail}")
            try:
                if ready():
                    self.timings[what] = time.monotonic() - started
                    return
            except (OSError, KeyError, ValueError) as error:  # not up yet: asked again
                last = error
            time.sleep(0.5)
        raise TimeoutError(f"waited {timeout_s:.0f}s for {what}; last answer: {last!r}")

    # --- the API ---------------------------------------------------------------------------------------------------
    def api(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        request = urllib.request.Request(self.server + path, method=method,  # noqa: S310 - our own https server
                                         data=None if body is None else json.dumps(body).encode(),
                                         headers={"Authorization": f"Bearer {self._token}",
                                                  "Content-Type": "application/json"})  # fmt: skip
        context = ssl.create_default_context(cafile=str(self.directory / "ca.crt"))
        with urllib.request.urlopen(request, context=context, timeout=10) as answer:  # noqa: S310
            data = answer.read()
        return json.loads(data) if data[:1] in (b"{", b"[") else data.decode()

    def _healthy(self, port: int) -> bool:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # the component's own self-signed serving certificate
        with urllib.request.urlopen(f"https://127.0.0.1:{port}/healthz", context=context, timeout=3) as answer:
            return bool(answer.status == 200)

    def _write_credentials(self) -> dict[str, Path]:
        masters = "system:masters"  # the controllers too: a throwaway cluster without RBAC gaps
        users = {"admin": ("admin", masters), "kube-controller-manager": ("system:kube-controller-manager", masters),
                 "kube-scheduler": ("system:kube-scheduler", ""), "kwok": ("kwok-controller", masters)}  # fmt: skip
        tokens = {name: secrets.token_hex(16) for name in users}
        lines = [f"{tokens[name]},{user},uid-{name}" + (f',"{group}"' if group else "")
                 for name, (user, group) in users.items()]  # fmt: skip
        (self.directory / "tokens.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
        configs = {}
        for name in users:
            cluster = {"server": self.server, "certificate-authority": str(self.directory / "ca.crt")}
            config = {"apiVersion": "v1", "kind": "Config", "current-context": "local",
                      "clusters": [{"name": "local", "cluster": cluster}],
                      "users": [{"name": name, "user": {"token": tokens[name]}}],
                      "contexts": [{"name": "local", "context": {"cluster": "local", "user": name}}]}  # fmt: skip
            configs[name] = self.directory / f"{name}.kubeconfig"
            configs[name].write_text(json.dumps(config), encoding="utf-8")
        self._token = tokens["admin"]
        return configs

    # --- start -----------------------------------------------------------------------------------------------------
    def start(self) -> None:
        started = time.monotonic()
        _write_pki(self.directory)
        configs = self._write_credentials()
        directory, ports = self.directory, self.ports
        etcd = f"http://127.0.0.1:{ports['etcd']}"
        peer = f"http://127.0.0.1:{ports['etcd-peer']}"
        self._start("etcd", "--name=check", f"--data-dir={directory / 'etcd'}", f"--listen-client-urls={etcd}",
                    f"--advertise-client-urls={etcd}", f"--listen-peer-urls={peer}",
                    f"--initial-advertise-peer-urls={peer}", f"--initial-cluster=check={peer}",
                    "--unsafe-no-fsync", "--log-level=warn")  # fmt: skip
        self._wait("etcd", lambda: urllib.request.urlopen(etcd + "/health", timeout=3).status == 200, 30)  # noqa: S310
        self._start("kube-apiserver", f"--etcd-servers={etcd}", "--bind-address=127.0.0.1",
                    "--advertise-address=127.0.0.1", f"--secure-port={ports['apiserver']}",
                    f"--cert-dir={directory / 'apiserver-certs'}", f"--tls-cert-file={directory / 'apiserver.crt'}",
                    f"--tls-private-key-file={directory / 'apiserver.key'}", f"--client-ca-file={directory / 'ca.crt'}",
                    f"--token-auth-file={directory / 'tokens.csv'}", "--authorization-mode=Node,RBAC",
                    "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                    f"--service-account-key-file={directory / 'sa.pub'}",
                    f"--service-account-signing-key-file={directory / 'sa.key'}",
                    f"--service-cluster-ip-range={SERVICE_RANGE}",
                    "--endpoint-reconciler-type=none",  # it refuses a loopback address otherwise
                    "--profiling=false")  # fmt: skip
        self._wait("kube-apiserver /readyz", lambda: self.api("GET", "/readyz") == "ok", 120)
        common = ("--bind-address=127.0.0.1", "--leader-elect=false", "--profiling=false")
        for name, port, extra in (
            ("kube-controller-manager", ports["controller"],
             ("--controllers=*", "--use-service-account-credentials=false", f"--root-ca-file={directory / 'ca.crt'}",
              f"--service-account-private-key-file={directory / 'sa.key'}",
              f"--service-cluster-ip-range={SERVICE_RANGE}")),
            ("kube-scheduler", ports["scheduler"], ()),
        ):  # fmt: skip
            config = configs[name]
            self._start(name, f"--kubeconfig={config}", f"--authentication-kubeconfig={config}",
                        f"--authorization-kubeconfig={config}", f"--secure-port={port}",
                        f"--cert-dir={directory / (name + '-certs')}", *common, *extra)  # fmt: skip
        self._start("kwok", f"--kubeconfig={configs['kwok']}", f"--config={STAGES}", "--manage-all-nodes=false",
                    "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake", "--cidr=10.244.0.0/16",
                    "--node-ip=10.0.0.1")  # fmt: skip
        self._wait("kube-controller-manager /healthz", lambda: self._healthy(ports["controller"]), 60)
        self._wait("kube-scheduler /healthz", lambda: self._healthy(ports["scheduler"]), 60)
        for index in range(self.nodes):
            self._create_node(f"fake-node-{index}", ZONES[index % len(ZONES)])
        # Ready by kwok, and untainted by the controller-manager's node lifecycle controller.
        self._wait(f"{self.nodes} fake nodes ready", self._nodes_ready, 90)
        self.timings["control plane"] = time.monotonic() - started

    def _create_node(self, name: str, zone: str) -> None:
        capacity = {"cpu": "8", "memory": "32Gi", "pods": "110"}
        self.api("POST", "/api/v1/nodes", {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "annotations": {"kwok.x-k8s.io/node": "fake"},
                         "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                                    "topology.kubernetes.io/zone": zone}},
            "status": {"allocatable": capacity, "capacity": capacity},
        })  # fmt: skip

    def _nodes_ready(self) -> bool:
        def ready(node: dict[str, Any]) -> bool:
            conditions = node["status"].get("conditions", [])
            return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

        nodes = self.api("GET", "/api/v1/nodes")["items"]
        return sum(1 for node in nodes if ready(node) and not node["spec"].get("taints")) >= self.nodes
