"""Every knob of keyrevoke, in one place.

Each setting has a default that works for the embedded set-up (dev server, simulator and worker on
loopback, ledger in a SQLite file under the state directory) and an environment variable
``KEYREVOKE_<NAME>`` to change it. Workflow code never imports this module: activities and workers
receive what they need from it when the worker is built.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from keyrevoke import models


class Settings(BaseSettings):
    """keyrevoke's settings, read from ``KEYREVOKE_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="KEYREVOKE_", extra="ignore", frozen=True)

    embedded: bool = Field(
        default=True,
        description="The embedded set-up: a missing key-encryption key, payload key or signing key file is made "
        "once under the state directory, the ledger defaults to a SQLite file there and the platform hook to "
        "a file sink. A deployment sets it false: every key then comes from the secret store (a missing one "
        "is an error, never a new key), and the ledger URL, the hook URL and the operators file must be given.",
    )
    state_dir: Path = Field(
        default=Path(".state"),
        description="Folder for the embedded set-up: ledger file, dev-server database, reports, hook sink.",
    )
    ledger_url: str = Field(
        default="",
        description="sqlite:///path/to/file or postgresql://user@host/db; empty means <state_dir>/ledger.sqlite.",
    )
    ledger_kek: SecretStr | None = Field(
        default=None, description="Key-encryption key for secrets at rest: 32 bytes, urlsafe base64."
    )
    ledger_kek_file: Path | None = Field(
        default=None,
        description="File holding the key-encryption key; empty means <state_dir>/ledger.kek (made once).",
    )
    master_credentials_file: Path | None = Field(
        default=None,
        description="JSON file {venue: {api_key, secret, passphrase}} with the platform's master keys "
        "(broker or master accounts that delete sub-account keys); empty means <state_dir>/masters.json.",
    )

    temporal_address: str = Field(default="127.0.0.1:7233", description="Temporal frontend host:port.")
    temporal_namespace: str = Field(default="default")
    temporal_api_key: SecretStr | None = Field(
        default=None, description="API key for Temporal Cloud (sent as a bearer token; implies TLS)."
    )
    temporal_tls: bool = Field(default=False, description="Connect to Temporal over TLS.")
    temporal_tls_ca_file: Path | None = Field(default=None, description="CA bundle that signs the server.")
    temporal_tls_cert_file: Path | None = Field(default=None, description="Client certificate for mTLS.")
    temporal_tls_key_file: Path | None = Field(default=None, description="Client private key for mTLS.")
    temporal_tls_server_name: str = Field(default="", description="Expected server name, if not the host.")

    payload_key: SecretStr | None = Field(
        default=None,
        description="AES key for Temporal payloads: 32 bytes, urlsafe base64. Empty means the key file.",
    )
    payload_key_file: Path | None = Field(
        default=None, description="File with the payload key; empty means <state_dir>/payload.key (made once)."
    )
    payload_old_keys: SecretStr | None = Field(
        default=None, description="Comma-separated older payload keys that still decrypt (key rotation)."
    )
    signing_key: SecretStr | None = Field(
        default=None,
        description="The deployment's Ed25519 signing key (32-byte seed, urlsafe base64): signs evidence "
        "reports and escalation packets. Empty means the key file.",
    )
    signing_key_file: Path | None = Field(
        default=None, description="File with the signing key; empty means <state_dir>/signing.key (made once)."
    )
    codec_server_host: str = Field(
        default="127.0.0.1",
        description="Address `keyrevoke codec-server` listens on; it serves decrypted payloads over plain "
        "HTTP, so keep it on loopback (or behind a TLS proxy).",
    )
    codec_server_port: int = Field(default=8081, ge=1, le=65535, description="Port of `keyrevoke codec-server`.")
    codec_server_token: SecretStr | None = Field(
        default=None, description="Bearer token the codec server requires; empty refuses every request."
    )
    codec_server_cors_origin: str = Field(
        default="http://127.0.0.1:8233", description="The Temporal UI's origin, allowed by CORS."
    )

    task_queue_prefix: str = Field(
        default="keyrevoke", description="Task queues are <prefix>-control and <prefix>-venue-<venue>."
    )

    venue_urls: dict[str, str] = Field(
        default_factory=dict,
        description='Base URL per venue, e.g. {"binance": "http://127.0.0.1:8800"}; a venue not '
        "listed is refused (its keys end misconfigured) unless allow_real_exchanges is set. The simulator "
        "prints these (a port per venue).",
    )
    allow_real_exchanges: bool = Field(
        default=False,
        description="Call a venue not listed in venue_urls at its real exchange host. Off, such a venue's keys "
        "end misconfigured and nothing is sent to it: a simulator set-up never reaches a real exchange by mistake.",
    )
    venue_activities_per_second: float = Field(
        default=50.0,
        gt=0,
        description="Batch activities per second on each venue task queue, enforced by the Temporal server "
        "for all the queue's workers together.",
    )
    venue_requests_per_second: float = Field(
        default=200.0,
        gt=0,
        description="Requests per second to one venue from all workers together (they reserve request slots "
        "and share one send window in the ledger): the venue's published limit, however many workers serve it. "
        "A request counts until a second after its answer, so delays on the way cannot put a second over it.",
    )
    venue_request_timeout_seconds: float = Field(default=10.0, gt=0)
    request_attempts: int = Field(default=4, ge=1, description="Attempts for one venue request (tenacity).")

    batch_size: int = Field(default=25, ge=1, le=500, description="Keys per batch activity.")
    batches_in_flight: int = Field(default=4, ge=1, le=100, description="Concurrent batches per venue.")
    first_batch_size: int = Field(
        default=8,
        ge=1,
        le=500,
        description="Keys in each venue's first batch, which runs alone until its keys are probed: small, so "
        "the riskiest keys' revokes go out after one round of probes instead of behind every batch's.",
    )
    batch_attempts: int = Field(
        default=12,
        ge=1,
        le=1000,
        description="Attempts of one batch activity before its keys are retried one by one alone; a key that "
        "still fails alone after as many attempts ends failed (or unconfirmed, if it was revoked) with its last "
        "error, and the other keys go on.",
    )
    keys_in_flight_per_batch: int = Field(
        default=8, ge=1, le=200, description="Keys one batch activity works on at once."
    )
    verify_interval_seconds: float = Field(default=2.0, gt=0, description="Pause between verify probes.")
    escalation_wait_seconds: float = Field(
        default=86_400.0,
        gt=0,
        description="How long a venue waits for the exchange to revoke escalated keys (and the commander to "
        "confirm) before its escalated keys are left as they are.",
    )
    escalation_probe_interval_seconds: float = Field(
        default=300.0, gt=0, description="While waiting for the exchange, how often escalated keys are probed."
    )
    escalation_dir: Path | None = Field(
        default=None, description="Where escalation packets go; empty means <state_dir>/escalations."
    )
    verify_deadline_seconds: float = Field(
        default=120.0, gt=0, description="After this long a key that still authenticates is reported live."
    )

    worker_http_port: int = Field(
        default=9464,
        ge=0,
        le=65535,
        description="Worker health and metrics endpoint (/healthz, /readyz, /metrics for Prometheus); 0 turns it off.",
    )
    worker_http_host: str = Field(
        default="127.0.0.1",
        description="Address the worker's health and metrics endpoint listens on: loopback by default; 0.0.0.0 "
        "where the kubelet and Prometheus reach the pod from outside (the Kubernetes manifests set it).",
    )
    worker_shutdown_seconds: float = Field(
        default=30.0, gt=0, description="On SIGTERM, how long running activities get to finish."
    )

    otel_exporter_otlp_endpoint: str = Field(
        default="",
        description="OpenTelemetry collector's OTLP/gRPC endpoint, e.g. http://otel-collector:4317: traces of "
        "every client, workflow, activity and venue call, and the workers' metrics, go there. Empty turns "
        "OTLP (and tracing) off; /metrics is served either way.",
    )
    otel_export_interval_seconds: float = Field(
        default=15.0, gt=0, description="How often a worker pushes its metrics by OTLP."
    )
    metrics_finished_incident_seconds: float = Field(
        default=3600.0,
        ge=0,
        description="An incident whose keys all reached a final state stays on the keys-by-state gauge "
        "for this long after its last change, so dashboards show it complete rather than gone.",
    )

    hook_url: str = Field(
        default="", description="Platform webhook for freeze, unfreeze and notify; empty means the file sink."
    )
    hook_secret: SecretStr | None = Field(
        default=None, description="Shared secret: the webhook body is signed with HMAC-SHA256 under it."
    )
    hook_file: Path | None = Field(
        default=None,
        description="Platform hook file sink (JSON lines of freeze and notify requests); empty means "
        "<state_dir>/platform-hook.jsonl.",
    )
    operator: str = Field(
        default="",
        description="The name the embedded set-up registers its generated operator key under; empty means the "
        "OS user. Names are only shown: the operator's key decides (see operators_file).",
    )
    operators_file: Path | None = Field(
        default=None,
        description="The registered operators: an ssh-keygen allowed_signers file, one line per operator "
        "('name ssh-ed25519 AAAA...'). Every control action must be signed by one of these keys. Empty means "
        "the embedded set-up: <state_dir>/operators, made once with one generated key (<state_dir>/operator.key); "
        "with embedded false it must be set (no operator key is ever made).",
    )
    operator_key_file: Path | None = Field(
        default=None,
        description="The OpenSSH Ed25519 private key (unencrypted) the CLI signs control actions with; empty "
        "means <state_dir>/operator.key in the embedded set-up. Passphrase-protected keys: sign with "
        "`ssh-keygen -Y sign -n keyrevoke` and pass --signature.",
    )
    operator_signature_max_age_seconds: float = Field(
        default=900.0,
        gt=0,
        description="A signed control action older than this (or dated this far in the future) is refused as stale.",
    )

    platform_name: str = Field(
        default="keyrevoke",
        description="The breached platform's name, as exchanges and owners know it: it heads escalation packets "
        "and owner notices.",
    )
    platform_contact: str = Field(
        default="",
        description="How an exchange's security team reaches the platform's incident response (address, phone): "
        "written in every escalation packet.",
    )
    broker_ids: dict[str, str] = Field(
        default_factory=dict,
        description='The platform\'s broker (partner) id per venue, e.g. {"binance": "B123"}: exchanges find '
        "every key bound to it. Written in that venue's escalation packet.",
    )
    egress_ips: list[str] = Field(
        default_factory=list,
        description="The platform's egress IP addresses its users' keys were bound to, e.g. [\"203.0.113.7\"] "
        "(JSON list): written in every escalation packet.",
    )
    contacts_file: Path | None = Field(
        default=None,
        description='JSON file {venue: {"address": "security@exchange", "public_key_file": "key.asc"}}: where '
        "each exchange's security team takes escalation packets and its OpenPGP public key (a relative path is "
        "read beside the file). Empty means <state_dir>/exchange-contacts.json; a venue not listed gets its "
        "packet file but no mail.",
    )
    packet_fallback_key_file: Path | None = Field(
        default=None,
        description="Armored OpenPGP public key of the platform's own security team: a venue whose contact has "
        "no key of its own gets its packet encrypted to this one, to be forwarded by hand. Empty: such a venue "
        "gets no packet file (a plaintext packet never touches the disk).",
    )
    packet_keys_per_part: int = Field(
        default=20_000,
        ge=1,
        description="API keys per escalation packet part: each part is its own encrypted file and mail, so a "
        "packet of any size goes out in messages a mail server takes.",
    )
    smtp_url: str = Field(
        default="",
        description="SMTP server for escalation packets and owner notices: smtp://[user[:password]@]host[:port] "
        "(STARTTLS when offered), smtp+starttls:// (STARTTLS required) or smtps:// (TLS). Empty sends no mail: "
        "packets stay in their files and the event log says nobody was sent anything.",
    )
    smtp_password: SecretStr | None = Field(
        default=None, description="SMTP AUTH password (instead of one in the URL); the URL names the user."
    )
    smtp_from: str = Field(
        default="keyrevoke@localhost", description="The From address of escalation packets and owner notices."
    )
    smtp_ca_file: Path | None = Field(
        default=None, description="CA bundle that signs the SMTP server's certificate, if not a public CA."
    )
    smtp_timeout_seconds: float = Field(default=30.0, gt=0, description="Timeout of one SMTP exchange.")
    api_management_urls: dict[str, str] = Field(
        default_factory=dict,
        description="Per venue, the page where a user deletes and creates API keys, for owner notices; "
        "overrides keyrevoke's built-in list (keyrevoke/venues.py).",
    )

    @field_validator("temporal_address")
    @classmethod
    def _address_has_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"expected host:port, got {value!r}")
        return value

    @field_validator("venue_urls")
    @classmethod
    def _urls_are_http(cls, value: dict[str, str]) -> dict[str, str]:
        for venue, url in value.items():
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"venue {venue!r}: base URL must start with http:// or https://, got {url!r}")
        return value

    # Derived paths: defaults hang off state_dir so one flag moves the whole embedded set-up.

    def resolved_ledger_url(self) -> str:
        return self.ledger_url or f"sqlite:///{self.state_dir / 'ledger.sqlite'}"

    def resolved_kek_file(self) -> Path:
        return self.ledger_kek_file or self.state_dir / "ledger.kek"

    def resolved_masters_file(self) -> Path:
        return self.master_credentials_file or self.state_dir / "masters.json"

    def resolved_escalation_dir(self) -> Path:
        return self.escalation_dir or self.state_dir / "escalations"

    def resolved_payload_key_file(self) -> Path:
        return self.payload_key_file or self.state_dir / "payload.key"

    def resolved_signing_key_file(self) -> Path:
        return self.signing_key_file or self.state_dir / "signing.key"

    def resolved_operators_file(self) -> Path:
        return self.operators_file or self.state_dir / "operators"

    def resolved_operator_key_file(self) -> Path:
        return self.operator_key_file or self.state_dir / "operator.key"

    def resolved_contacts_file(self) -> Path:
        return self.contacts_file or self.state_dir / "exchange-contacts.json"

    def resolved_hook_file(self) -> Path:
        return self.hook_file or self.state_dir / "platform-hook.jsonl"

    @property
    def control_queue(self) -> str:
        return models.control_queue(self.task_queue_prefix)

    def venue_queue(self, venue: str) -> str:
        return models.venue_queue(self.task_queue_prefix, venue)
