"""The gateway's own tables (SQLAlchemy Core on its own MetaData; the migration creates them).

No clear personal data of insured people: the audit log names a person by identity's opaque
`person_id` and by a keyed blind hash of the ID number (audit.py), never the number itself."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

metadata = sa.MetaData()

# Staff who log in with a password (api.md: OAuth2 password grant). `password_hash` is an
# Argon2id PHC string (accounts.py); `scope` a normalised GB/T 2260 prefix (staff.py).
# `token_version` is in every token issued for the account; a trigger raises it whenever the
# account is disabled or enabled or its password, role or scope changes (migration
# gateway_0002), and a token of an older version is refused (tokens.py).
staff_accounts = sa.Table(
    "staff_accounts",
    metadata,
    sa.Column("username", sa.String(64), primary_key=True),
    sa.Column("password_hash", sa.Text, nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("scope", sa.String(12), nullable=False),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column("token_version", sa.Integer, nullable=False, server_default="0"),
)

# One row per failed login, read by the throttle (throttling.py). In the database rather than
# in memory so that the limit holds across the gateway's replicas.
login_failures = sa.Table(
    "login_failures",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("username", sa.String(64), nullable=False),
    sa.Column("client", sa.String(64), nullable=False),
    sa.Column("failed_at", sa.DateTime(timezone=True), nullable=False),
)
sa.Index("ix_login_failures_username", login_failures.c.username, login_failures.c.failed_at)
sa.Index("ix_login_failures_client", login_failures.c.client, login_failures.c.failed_at)

# Every read or change of personal data (domain.md §2.5). Append-only: triggers in the migration
# make the database refuse UPDATE, DELETE and TRUNCATE, whatever the application does, and the
# gateway's login may only SELECT and INSERT here and owns nothing, so it cannot drop them
# (SERVICE.append_only, canbao_platform.db.grant_application_role).
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("staff", sa.String(64), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("staff_scope", sa.String(12), nullable=False),
    sa.Column("person_id", UUID(as_uuid=True)),
    sa.Column("id_number_hash", sa.String(64)),
    sa.Column("person_region", sa.String(12)),  # the region the scope rule was checked against
    sa.Column("endpoint", sa.String(160), nullable=False),  # method + route template, no values
    sa.Column("purpose", sa.String(64), nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("client", sa.String(64)),
)
sa.Index("ix_audit_log_at", audit_log.c.at, postgresql_using="brin")
sa.Index("ix_audit_log_person_id", audit_log.c.person_id, audit_log.c.id)
sa.Index("ix_audit_log_id_number_hash", audit_log.c.id_number_hash, audit_log.c.id)
sa.Index("ix_audit_log_staff", audit_log.c.staff, audit_log.c.id)

# Registered devices and programs that log in with OAuth2 client credentials (RFC 6749 §4.4;
# api.md "Self-service", "Partner departments"): `kind` kiosk or partner (clients.ClientKind). The
# secret is an Argon2id PHC string, like a staff password; `token_version` rises (trigger,
# migration gateway_0003) whenever the client is disabled or its secret or kind changes, and a
# device token of an older version is refused. `region` is where a kiosk stands (GB/T 2260
# prefix): what its audit rows are filed under; it limits nothing a citizen may read of their own.
clients = sa.Table(
    "clients",
    metadata,
    sa.Column("client_id", sa.String(64), primary_key=True),
    sa.Column("secret_hash", sa.Text, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("region", sa.String(12), nullable=False),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("token_version", sa.Integer, nullable=False, server_default="0"),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    # A partner's (migration gateway_0005): its department, what it may do and see
    # (clients.Permission, clients.Field); and the secret it had before a rotation, good until
    # `previous_secret_expires_at` (clients.rotate_secret).
    sa.Column("department", sa.String(16)),
    sa.Column("permissions", ARRAY(sa.String(16)), nullable=False, server_default="{}"),
    sa.Column("fields", ARRAY(sa.String(16)), nullable=False, server_default="{}"),
    sa.Column("previous_secret_hash", sa.Text),
    sa.Column("previous_secret_expires_at", sa.DateTime(timezone=True)),
    # The Ed25519 public key a partner signs its DCI messages with (dci.py; migration
    # gateway_0006): when set, every DCI message of the client must carry a valid signature.
    sa.Column("signing_public_key", sa.Text),
    # Where the registry may post a partner's DCI callbacks (dci_delivery.py): registered by the
    # agency; a message's sender_uri must lie under one of them.
    sa.Column("callback_urls", ARRAY(sa.String(300)), nullable=False, server_default="{}"),
    # How the registry authenticates to the partner's callback endpoints (the registry core API
    # secures them with a bearer token of the partner's own token API; migration gateway_0009):
    # its token URL, the client_id the partner gave the registry, and that secret, sealed under
    # the gateway's data key (`callback_key_id`). Null: the partner's endpoints ask for none.
    sa.Column("callback_token_url", sa.String(300)),
    sa.Column("callback_client_id", sa.String(100)),
    sa.Column("callback_secret_sealed", sa.LargeBinary),
    sa.Column("callback_key_id", sa.String(64)),
)

# A citizen's self-service session (self_service.py): opened by a kiosk that read the ID card or
# by the mobile app's ID token, reaching that one person's record until `expires_at`, unless
# ended (the citizen left, the kiosk went idle) or the kiosk was disabled. No clear personal
# data: the person by identity's person_id and the number's blind hash (audit.py).
self_sessions = sa.Table(
    "self_sessions",
    metadata,
    sa.Column("session_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("person_id", UUID(as_uuid=True), nullable=False),
    sa.Column("id_number_hash", sa.String(64), nullable=False),
    sa.Column("region", sa.String(6), nullable=False),  # the person's (county-level division)
    sa.Column("channel", sa.String(8), nullable=False),  # kiosk | mobile
    sa.Column("device", sa.String(64), nullable=False),  # the kiosk's client_id; the app's issuer
    sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("ended_at", sa.DateTime(timezone=True)),
)
sa.Index("ix_self_sessions_expires_at", self_sessions.c.expires_at)

# ID tokens of the mobile app's identity provider already traded for a session: each is good
# for one session (RFC 7519 `jti`), so a token copied from a phone's traffic opens nothing.
# Kept until the token expires; older rows are pruned when new ones are written.
id_token_uses = sa.Table(
    "id_token_uses",
    metadata,
    sa.Column("issuer", sa.String(200), primary_key=True),
    sa.Column("jti", sa.String(200), primary_key=True),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
)
sa.Index("ix_id_token_uses_expires_at", id_token_uses.c.expires_at)

# Proofs of insurance issued (参保证明, api.md "Self-service"): what each printout said, so that
# `GET /api/v1/verify/{code}` can confirm a paper a bank or an employer holds. Insert-only
# (migration gateway_0004): a certificate is never changed once issued. Masked name and number
# only; the number's blind hash (audit.py) finds a person's certificates.
certificates = sa.Table(
    "certificates",
    metadata,
    sa.Column("code", sa.String(16), primary_key=True),  # certificate.py: 16 Crockford digits
    sa.Column("person_id", UUID(as_uuid=True), nullable=False),
    sa.Column("id_number_hash", sa.String(64), nullable=False),
    sa.Column("masked_name", sa.String(60), nullable=False),
    sa.Column("masked_number", sa.String(18), nullable=False),
    sa.Column("registration", sa.String(12)),
    sa.Column("statuses", JSONB, nullable=False),  # {"pension": "11", …} at issue
    sa.Column("enrolments", JSONB, nullable=False),  # certificate.EnrolmentLine, at issue
    sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),  # the verdict's time
    sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("channel", sa.String(8), nullable=False),  # kiosk | mobile
    sa.Column("device", sa.String(64), nullable=False),
)
sa.Index("ix_certificates_id_number_hash", certificates.c.id_number_hash)

# Requests counted against a limit (throttling.take): self-service sessions per kiosk and per
# ID number, verifications per client address. `key` never holds personal data (a number's
# blind hash, an address, a device's client_id).
throttle_hits = sa.Table(
    "throttle_hits",
    metadata,
    sa.Column("scope", sa.String(24), nullable=False),
    sa.Column("key", sa.String(64), nullable=False),
    sa.Column("hit_at", sa.DateTime(timezone=True), nullable=False),
)
sa.Index(
    "ix_throttle_hits_scope_key_hit_at",
    throttle_hits.c.scope,
    throttle_hits.c.key,
    throttle_hits.c.hit_at,
)

# DCI messages received (dci_routes.py): a message_id is the sender's, and one sender's repeated
# message_id is answered as the first time (under its correlation_id) and never executed twice;
# another message under a used id is refused (rjct.message_id.duplicate). No personal data: the
# digest of the message stands for it.
dci_messages = sa.Table(
    "dci_messages",
    metadata,
    sa.Column("client_id", sa.String(64), primary_key=True),
    sa.Column("message_id", sa.String(200), primary_key=True),
    sa.Column("action", sa.String(24), nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("correlation_id", UUID(as_uuid=True), nullable=False),
    sa.Column("transaction_id", sa.String(99)),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
)

# What each request of a DCI message came to, for `registry/txn/status`: its status and reason
# and how many records matched, never the records themselves (no personal data here).
dci_requests = sa.Table(
    "dci_requests",
    metadata,
    sa.Column("correlation_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("reference_id", sa.String(99), primary_key=True),
    sa.Column("client_id", sa.String(64), nullable=False),
    sa.Column("transaction_id", sa.String(99), nullable=False),
    sa.Column("txn_type", sa.String(16), nullable=False),
    sa.Column("status", sa.String(4), nullable=False),  # rcvd | pdng | succ | rjct
    sa.Column("status_reason_code", sa.String(64)),
    sa.Column("status_reason_message", sa.String(999)),
    sa.Column("total_count", sa.Integer),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)
sa.Index("ix_dci_requests_transaction", dci_requests.c.client_id, dci_requests.c.transaction_id)

# DCI callbacks to partners (dci_delivery.py): the signed answer sealed under the gateway's data
# key (`key_id`, bound to the row), erased once delivered or given up; the row stays for txn
# status. `leased_until`: the replica posting it.
dci_callbacks = sa.Table(
    "dci_callbacks",
    metadata,
    sa.Column("callback_id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("client_id", sa.String(64), nullable=False),
    sa.Column("correlation_id", UUID(as_uuid=True), nullable=False),
    sa.Column("action", sa.String(24), nullable=False),  # on-search | txn-on-status
    sa.Column("url", sa.String(300), nullable=False),
    sa.Column("body_sealed", sa.LargeBinary),
    sa.Column("key_id", sa.String(64)),
    sa.Column("state", sa.String(12), nullable=False),  # pending | delivered | failed
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("last_error", sa.String(300)),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("leased_until", sa.DateTime(timezone=True)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("delivered_at", sa.DateTime(timezone=True)),
    # Callbacks of one key are delivered in order, one at a time (a subscriber's notifications
    # about one person: migration gateway_0007); null for the others.
    sa.Column("ordering_key", sa.String(120)),
)
sa.Index(
    "ix_dci_callbacks_ordering",
    dci_callbacks.c.ordering_key,
    dci_callbacks.c.callback_id,
    postgresql_where=dci_callbacks.c.state == "pending",
)
sa.Index(
    "ix_dci_callbacks_due",
    dci_callbacks.c.next_attempt_at,
    postgresql_where=dci_callbacks.c.state == "pending",
)
sa.Index("ix_dci_callbacks_correlation", dci_callbacks.c.client_id, dci_callbacks.c.correlation_id)

# DCI subscriptions (dci_routes.py, dci_notify.py): a partner asked to be told when a person's
# registration or statuses change — one person (`person_id`, found by the number it named: the
# number itself is not kept) or everyone a filter selects (matching's filter, over attributes
# only). Notifications go to `notify_url`, under the client's registered addresses.
dci_subscriptions = sa.Table(
    "dci_subscriptions",
    metadata,
    sa.Column("subscription_code", UUID(as_uuid=True), primary_key=True),
    sa.Column("client_id", sa.String(64), nullable=False),
    sa.Column("transaction_id", sa.String(99), nullable=False),
    sa.Column("reference_id", sa.String(99), nullable=False),
    sa.Column("reg_event_type", sa.String(40)),
    sa.Column("person_id", UUID(as_uuid=True)),
    sa.Column("filter", JSONB(none_as_null=True)),
    sa.Column("notify_url", sa.String(300), nullable=False),
    sa.Column("state", sa.String(12), nullable=False),  # active | cancelled
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("cancelled_at", sa.DateTime(timezone=True)),
    # An exchange (dci_exchange.py: the national registry's subscriptions) receives everyone its
    # filter selects, not only changes, and is reconciled: `reconcile_pass` counts the passes,
    # `reconcile_after` is the keyset cursor of the one in progress (null: none), and
    # `reconciled_at` when the last one ended (null: never, the first full delivery is due).
    sa.Column("exchange", sa.Boolean, nullable=False, server_default="false"),
    sa.Column("reconcile_pass", sa.Integer, nullable=False, server_default="0"),
    sa.Column("reconcile_after", UUID(as_uuid=True)),
    sa.Column("reconciled_at", sa.DateTime(timezone=True)),
    sa.CheckConstraint("(person_id IS NULL) <> (filter IS NULL)", name="ck_dci_subscriptions_what"),
)
sa.Index(
    "ix_dci_subscriptions_person",
    dci_subscriptions.c.person_id,
    postgresql_where=dci_subscriptions.c.state == "active",
)
sa.Index("ix_dci_subscriptions_client", dci_subscriptions.c.client_id, dci_subscriptions.c.state)

# What an exchange's subscriber holds, as far as its acknowledgements say (dci_notify.py): per
# person, the digest of the record last sent (and whether it said the person is in the
# subscription), the callback carrying it, and the digest it acknowledged. `checked_pass` is the
# last reconciliation pass that compared the person. No personal data: digests only.
dci_exchange_ledger = sa.Table(
    "dci_exchange_ledger",
    metadata,
    sa.Column("subscription_code", UUID(as_uuid=True), primary_key=True),
    sa.Column("person_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("sent_digest", sa.String(64), nullable=False),
    sa.Column("sent_selected", sa.Boolean, nullable=False),
    sa.Column("sent_callback_id", sa.BigInteger, nullable=False),
    sa.Column("state", sa.String(12), nullable=False),  # pending | acknowledged | failed
    sa.Column("acked_digest", sa.String(64)),
    sa.Column("acked_selected", sa.Boolean),
    sa.Column("acknowledged_at", sa.DateTime(timezone=True)),
    sa.Column("checked_pass", sa.Integer, nullable=False, server_default="0"),
)
sa.Index(
    "ix_dci_exchange_ledger_callback",
    dci_exchange_ledger.c.sent_callback_id,
    postgresql_where=dci_exchange_ledger.c.state == "pending",
)

# The reconciliation report (dci_notify.py): one row per pass over an exchange's selection, its
# counts moved page by page; `finished_at` null while the pass runs. `unidentified`: selected
# people without a citizen ID number, whom the national registry cannot key (not sent).
dci_exchange_passes = sa.Table(
    "dci_exchange_passes",
    metadata,
    sa.Column("subscription_code", UUID(as_uuid=True), primary_key=True),
    sa.Column("pass", sa.Integer, primary_key=True),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("selected", sa.Integer, nullable=False, server_default="0"),
    sa.Column("held", sa.Integer, nullable=False, server_default="0"),
    sa.Column("in_flight", sa.Integer, nullable=False, server_default="0"),
    sa.Column("missing", sa.Integer, nullable=False, server_default="0"),
    sa.Column("stale", sa.Integer, nullable=False, server_default="0"),
    sa.Column("removed", sa.Integer, nullable=False, server_default="0"),
    sa.Column("redelivered", sa.Integer, nullable=False, server_default="0"),
    sa.Column("unidentified", sa.Integer, nullable=False, server_default="0"),
)
