"""SQLAlchemy models. Importing this package registers every table on ``Base.metadata``."""

from fieldsync.models.base import Base, utcnow
from fieldsync.models.cases import AuditEntry, Case, CaseEvent, Conflict
from fieldsync.models.devices import Device, EnrolmentCode
from fieldsync.models.forms import FORM_STATES, FormVersion
from fieldsync.models.org import ROLES, Service, Site, StaffToken, User
from fieldsync.models.sync import Counter, ScopeTombstone, StoredEnvelope

__all__ = [
    "FORM_STATES",
    "ROLES",
    "AuditEntry",
    "Base",
    "Case",
    "CaseEvent",
    "Conflict",
    "Counter",
    "Device",
    "EnrolmentCode",
    "FormVersion",
    "ScopeTombstone",
    "Service",
    "Site",
    "StaffToken",
    "StoredEnvelope",
    "User",
    "utcnow",
]
