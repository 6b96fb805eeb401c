"""Create the benchmark organisation in a store and enrol its devices through the API."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)

from bench.stores import Store
from bench.workload import DeviceCredential, Org

SUITE = "mlkem768x25519"  # the default, post-quantum hybrid suite


def create_org(store: Store, org: Org) -> tuple[list[DeviceCredential], dict[str, str]]:
    """Add services, sites and users; enrol every device with a one-time code over the real
    enrolment endpoint (in process). Returns the credentials and the server's public key."""
    from fieldsync.core.keys import encode_signing_public_key, generate_signing_key
    from fieldsync.services import devices as devices_service
    from fieldsync.services import users as users_service

    app = store.app
    credentials: list[DeviceCredential] = []
    server_key: dict[str, Any] = {}
    with app.app_context():
        for code in org.services:
            users_service.add_service(code, f"Serviciul de probațiune {code}")
        for i, site in enumerate(org.sites):
            users_service.add_site(site, f"Loc de muncă {site}",
                                   org.services[i % len(org.services)])
        made: set[str] = set()
        for spec in org.devices:
            if spec.username not in made:
                users_service.add_user(spec.username, spec.role, service=spec.service,
                                       site=spec.site)
                made.add(spec.username)
        client = app.test_client()
        for spec in org.devices:
            code = devices_service.issue_code(spec.username, 3600).code
            key = generate_signing_key()
            response = client.post("/api/v1/devices/enroll", json={
                "code": code, "public_key": encode_signing_public_key(key.public_key()),
                "suite": SUITE, "label": f"bench {spec.index}"})
            if response.status_code != 201:
                raise RuntimeError(f"enrolment failed: {response.status_code} {response.json}")
            body = response.json
            assert body is not None
            server_key = next(k for k in body["server_keys"] if k["suite"] == SUITE)
            pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
            credentials.append(DeviceCredential(spec.index, body["device_id"],
                                                body["device_token"], pem, spec.username,
                                                spec.role))
    store.dispose()
    return credentials, server_key
