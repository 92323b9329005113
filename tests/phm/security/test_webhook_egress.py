"""Finding 2 of issue 19: webhook endpoints cannot reach loopback, link-local, private or
unspecified addresses unless their network is allow-listed, checked on save and again on
connect after DNS resolution; delivery excerpts are for engineers only."""

from __future__ import annotations

import socket
from datetime import timedelta

import pytest

from phm.alarms import egress
from phm.alarms.delivery import DeliveryPolicy, deliver_due
from phm.alarms.models import DeliveryStatus, EventType, WebhookDelivery, WebhookEndpoint, new_webhook_secret
from phm.alarms.receiver import Misbehaviour, WebhookReceiver
from phm.alarms.services import enqueue_event

pytestmark = pytest.mark.django_db
ONE_TRY = DeliveryPolicy(retry_delays_s=(60,), jitter=0.0, connect_timeout_s=1, read_timeout_s=1)


@pytest.fixture(autouse=True)
def no_allow_list(settings):
    settings.PHM_WEBHOOK_ALLOWED_NETWORKS = []


@pytest.mark.parametrize(
    "url,kind",
    [
        ("http://127.0.0.1:8000/hook", "loopback"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[::1]:8000/", "loopback"),
        ("http://localhost:8123/admin/", "loopback"),
        ("http://0.0.0.0:6379/", "unspecified"),
        ("http://[::]:6379/", "unspecified"),
        ("http://[::ffff:127.0.0.1]/", "loopback"),
        ("http://[::ffff:169.254.169.254]/", "link-local"),
        ("http://10.20.1.5/hook", "private"),
        ("http://192.168.0.10/hook", "private"),
        ("http://[fd00::1]/hook", "private"),
    ],
)
def test_saving_an_internal_destination_is_refused_with_the_reason(engineer_client, url, kind):
    response = engineer_client.post("/api/v1/webhooks", {"url": url}, format="json")
    assert response.status_code == 400, response.content
    message = response.json()["detail"]["url"][0]
    assert f"{kind} address" in message and "PHM_WEBHOOK_ALLOWED_NETWORKS" in message
    assert not WebhookEndpoint.objects.exists()


def test_a_private_scada_network_is_allowed_once_listed(engineer_client, settings):
    settings.PHM_WEBHOOK_ALLOWED_NETWORKS = ["10.20.0.0/16"]
    assert engineer_client.post("/api/v1/webhooks", {"url": "http://10.20.1.5/hook"}, format="json").status_code == 201
    refused = engineer_client.post("/api/v1/webhooks", {"url": "http://10.21.0.1/hook"}, format="json")
    assert refused.status_code == 400 and "e.g. 10.21.0.0/24" in refused.json()["detail"]["url"][0]


def test_a_public_address_is_accepted(engineer_client):
    assert engineer_client.post("/api/v1/webhooks", {"url": "https://93.184.216.34/hook"}, format="json").status_code == 201


def test_an_update_to_an_internal_destination_is_refused(engineer_client, settings):
    endpoint = WebhookEndpoint.objects.create(url="https://93.184.216.34/hook")
    response = engineer_client.patch(f"/api/v1/webhooks/{endpoint.pk}", {"url": "http://127.0.0.1:6379/"}, format="json")
    assert response.status_code == 400 and WebhookEndpoint.objects.get().url == "https://93.184.216.34/hook"


def _queue_test_event(endpoint):
    enqueue_event(event_type=EventType.TEST, payload={"type": "test", "data": {}}, endpoints=[endpoint])


def test_a_stored_loopback_endpoint_is_refused_at_connect_time():
    """Saved before the policy (or written directly): the worker still never connects."""
    secret = new_webhook_secret()
    with WebhookReceiver(secret) as receiver:
        endpoint = WebhookEndpoint.objects.create(url=receiver.url, secret=secret)
        _queue_test_event(endpoint)
        deliver_due(worker="w", policy=ONE_TRY, max_seconds=5)
    assert receiver.state.accepted == [] and receiver.state.rejected == []
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == DeliveryStatus.PENDING and "127.0.0.1 is a loopback address" in delivery.last_error


def test_the_allow_list_lets_a_local_receiver_through(settings):
    settings.PHM_WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    secret = new_webhook_secret()
    with WebhookReceiver(secret) as receiver:
        _queue_test_event(WebhookEndpoint.objects.create(url=receiver.url, secret=secret))
        deliver_due(worker="w", policy=ONE_TRY, max_seconds=5)
    assert len(receiver.state.accepted) == 1 and WebhookDelivery.objects.get().status == DeliveryStatus.DELIVERED


def test_dns_rebinding_cannot_slip_through(engineer_client, monkeypatch):
    """The name resolves to a public address when saved and to 127.0.0.1 when the worker connects:
    the connect-time check refuses it, and the name is looked up once per connect (the socket goes
    to the address that was checked, not to a second lookup)."""
    secret = new_webhook_secret()
    real_getaddrinfo = socket.getaddrinfo
    answers = iter(["93.184.216.34", "127.0.0.1", "127.0.0.1"])
    lookups = []

    def rebinding_getaddrinfo(host, port, *args, **kwargs):
        if host == "scada.rebind.test":
            lookups.append(host)
            return real_getaddrinfo(next(answers), port, *args, **kwargs)
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding_getaddrinfo)
    with WebhookReceiver(secret) as receiver:
        port = receiver.url.split(":")[2].split("/")[0]
        created = engineer_client.post("/api/v1/webhooks", {"url": f"http://scada.rebind.test:{port}/hook", "secret": secret}, format="json")
        assert created.status_code == 201, created.content
        _queue_test_event(WebhookEndpoint.objects.get())
        deliver_due(worker="w", policy=ONE_TRY, max_seconds=5)
    assert receiver.state.accepted == [] and receiver.state.rejected == []
    assert "scada.rebind.test resolves to 127.0.0.1, a loopback address" in WebhookDelivery.objects.get().last_error
    assert lookups == ["scada.rebind.test", "scada.rebind.test"]


def test_connect_goes_to_the_checked_address(monkeypatch, settings):
    """The allowed address is connected to directly: urllib3 never resolves the name again."""
    settings.PHM_WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    secret = new_webhook_secret()
    real_getaddrinfo = socket.getaddrinfo
    lookups = []

    def counting_getaddrinfo(host, port, *args, **kwargs):
        if host == "scada.local.test":
            lookups.append(host)
            return real_getaddrinfo("127.0.0.1", port, *args, **kwargs)
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", counting_getaddrinfo)
    with WebhookReceiver(secret) as receiver:
        port = receiver.url.split(":")[2].split("/")[0]
        _queue_test_event(WebhookEndpoint.objects.create(url=f"http://scada.local.test:{port}/hook", secret=secret))
        deliver_due(worker="w", policy=ONE_TRY, max_seconds=5)
    assert len(receiver.state.accepted) == 1 and lookups == ["scada.local.test"]


def test_environment_proxies_are_not_used(monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://93.184.216.34:3128")
    session = egress.guarded_session()
    assert session.trust_env is False


def test_delivery_excerpts_are_for_engineers_only(operator_client, engineer_client, settings):
    settings.PHM_WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    secret = new_webhook_secret()
    with WebhookReceiver(secret, misbehave=lambda *a: Misbehaviour(status=500)) as receiver:
        endpoint = WebhookEndpoint.objects.create(url=receiver.url, secret=secret)
        _queue_test_event(endpoint)
        deliver_due(worker="w", policy=ONE_TRY, max_seconds=5)
    assert operator_client.get(f"/api/v1/webhooks/{endpoint.pk}/deliveries").status_code == 403
    answer = engineer_client.get(f"/api/v1/webhooks/{endpoint.pk}/deliveries")
    assert answer.status_code == 200 and answer.json()["results"][0]["last_error"].startswith("HTTP 500")


def _self_signed(tmp_path, name: str):
    """A certificate for ``name`` (its own CA) and its key, as files."""
    from datetime import UTC, datetime

    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return cert_file, key_file


def test_https_keeps_verifying_the_host_name_while_connecting_to_the_checked_address(tmp_path, monkeypatch, settings):
    """The socket goes to the checked IP, but TLS still checks the certificate against the name."""
    import ssl
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    import requests

    cert_file, key_file = _self_signed(tmp_path, "scada.tls.test")

    class Ok(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers.get("content-length", 0)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Ok)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    real_getaddrinfo = socket.getaddrinfo

    def fake_dns(host, *args, **kwargs):
        return real_getaddrinfo("127.0.0.1" if host in ("scada.tls.test", "other.tls.test") else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake_dns)
    settings.PHM_WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    try:
        with egress.guarded_session() as session:
            assert session.post(f"https://scada.tls.test:{port}/hook", data=b"{}", verify=str(cert_file), timeout=5).status_code == 204
            with pytest.raises(requests.exceptions.SSLError):
                session.post(f"https://other.tls.test:{port}/hook", data=b"{}", verify=str(cert_file), timeout=5)
    finally:
        server.shutdown()
