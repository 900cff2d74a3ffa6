"""Settings, read once from the environment (secrets never live in files we ship)."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path


def _flag(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def _dev_secret(var_dir: Path) -> str:
    """A per-installation secret for `make run` when HUB_SECRET is unset.

    Kept in var/ (mode 0600) so sessions and visitor tokens survive restarts.
    Production deployments set HUB_SECRET.
    """
    path = var_dir / "hub_secret"
    if path.exists():
        return path.read_text().strip()
    var_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    path.write_text(value)
    path.chmod(0o600)
    return value


@dataclass(frozen=True)
class Settings:
    var_dir: Path = Path("var")
    mongodb_uri: str | None = None
    db_name: str = "contact_hub"
    embedded_db_port: int = 27117
    rasa_url: str = "http://127.0.0.1:5005"
    rasa_autostart: bool = False
    rasa_port: int = 5005
    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str = "http://127.0.0.1:8000"
    secret: str = field(default="", repr=False)
    session_ttl_s: int = 12 * 3600
    api_token_ttl_s: int = 3600
    visitor_token_ttl_s: int = 30 * 24 * 3600
    max_ws_frame_bytes: int = 16 * 1024
    max_message_chars: int = 4000
    offer_timeout_s: float = 60.0
    decline_cooldown_s: float = 30.0
    chat_capacity: int = 3
    rasa_timeout_s: float = 10.0
    bot_retry_s: float = 5.0
    secure_cookies: bool = False
    twilio_auth_token: str | None = field(default=None, repr=False)
    twilio_account_sid: str | None = None
    twilio_api_base: str | None = None  # tests point the REST client at a local double
    models_dir: Path = Path("var/models")
    asr_model: str | None = "vosk-model-small-en-us-0.15"
    tts_voice: str = "en_US-joe-medium"
    queue_announce_s: float = 30.0
    slot_repair_s: float = 30.0
    # sign-in failures allowed per account (tenant + email) and per client address, and their
    # windows; webhook requests per source address (hub/ratelimit.py)
    login_fails_per_account: int = 5
    login_fails_account_window_s: float = 900.0
    login_fails_per_ip: int = 30
    login_fails_ip_window_s: float = 300.0
    webhook_rate_per_s: float = 50.0
    webhook_burst: int = 200

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        e = dict(os.environ if env is None else env)
        var_dir = Path(e.get("HUB_VAR_DIR", "var")).resolve()
        port = int(e.get("HUB_PORT", "8000"))
        host = e.get("HUB_HOST", "127.0.0.1")
        rasa_port = int(e.get("RASA_PORT", "5005"))
        rasa_url = e.get("RASA_URL") or f"http://127.0.0.1:{rasa_port}"
        return cls(
            var_dir=var_dir,
            mongodb_uri=e.get("MONGODB_URI") or None,
            db_name=e.get("HUB_DB_NAME", "contact_hub"),
            embedded_db_port=int(e.get("HUB_EMBEDDED_DB_PORT", "27117")),
            rasa_url=rasa_url.rstrip("/"),
            rasa_autostart=_flag(e.get("RASA_AUTOSTART"), default=not e.get("RASA_URL")),
            rasa_port=rasa_port,
            host=host,
            port=port,
            public_url=(e.get("HUB_PUBLIC_URL") or f"http://{host}:{port}").rstrip("/"),
            secret=e.get("HUB_SECRET") or _dev_secret(var_dir),
            session_ttl_s=int(e.get("HUB_SESSION_TTL_S", str(12 * 3600))),
            api_token_ttl_s=int(e.get("HUB_API_TOKEN_TTL_S", "3600")),
            max_ws_frame_bytes=int(e.get("HUB_MAX_WS_FRAME_BYTES", str(16 * 1024))),
            max_message_chars=int(e.get("HUB_MAX_MESSAGE_CHARS", "4000")),
            offer_timeout_s=float(e.get("HUB_OFFER_TIMEOUT_S", "60")),
            decline_cooldown_s=float(e.get("HUB_DECLINE_COOLDOWN_S", "30")),
            chat_capacity=int(e.get("HUB_CHAT_CAPACITY", "3")),
            rasa_timeout_s=float(e.get("RASA_TIMEOUT_S", "10")),
            bot_retry_s=float(e.get("HUB_BOT_RETRY_S", "5")),
            secure_cookies=_flag(e.get("HUB_SECURE_COOKIES"), default=False),
            twilio_auth_token=e.get("TWILIO_AUTH_TOKEN") or None,
            twilio_account_sid=e.get("TWILIO_ACCOUNT_SID") or None,
            twilio_api_base=(e.get("TWILIO_API_BASE") or "").rstrip("/") or None,
            models_dir=Path(e.get("HUB_MODELS_DIR") or var_dir / "models").resolve(),
            # the default speech models; a tenant or a number's flow may choose others
            asr_model=e.get("HUB_ASR_MODEL", "vosk-model-small-en-us-0.15") or None,
            tts_voice=e.get("HUB_TTS_VOICE") or "en_US-joe-medium",
            queue_announce_s=float(e.get("HUB_QUEUE_ANNOUNCE_S", "30")),
            slot_repair_s=float(e.get("HUB_SLOT_REPAIR_S", "30")),
            login_fails_per_account=int(e.get("HUB_LOGIN_FAILS_PER_ACCOUNT", "5")),
            login_fails_account_window_s=float(e.get("HUB_LOGIN_FAILS_ACCOUNT_WINDOW_S", "900")),
            login_fails_per_ip=int(e.get("HUB_LOGIN_FAILS_PER_IP", "30")),
            login_fails_ip_window_s=float(e.get("HUB_LOGIN_FAILS_IP_WINDOW_S", "300")),
            webhook_rate_per_s=float(e.get("HUB_WEBHOOK_RATE_PER_S", "50")),
            webhook_burst=int(e.get("HUB_WEBHOOK_BURST", "200")),
        )
