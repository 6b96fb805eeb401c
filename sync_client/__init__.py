"""FieldSync tablet client: an encrypted local store, an outbox of sealed envelopes, and sync.

A library first (:class:`Client`), with the ``fieldsync-client`` CLI on top. It reuses the
server's pure modules (envelopes, receipts, HLC, form engine) and never imports the server app.
The wire contract is ``docs/protocol.md``.
"""

from sync_client.client import Client, Filled, PullReport, PushReport
from sync_client.errors import (
    AlreadyEnrolled,
    ClientError,
    InvalidAnswers,
    LocalDataError,
    NotEnrolled,
    ProtocolError,
    ServerError,
    StoreError,
    SyncError,
    TransportError,
    WrongPassphrase,
)
from sync_client.transport import RetryPolicy

__all__ = [
    "AlreadyEnrolled",
    "Client",
    "ClientError",
    "Filled",
    "InvalidAnswers",
    "LocalDataError",
    "NotEnrolled",
    "ProtocolError",
    "PullReport",
    "PushReport",
    "RetryPolicy",
    "ServerError",
    "StoreError",
    "SyncError",
    "TransportError",
    "WrongPassphrase",
]
