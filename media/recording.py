"""Call recordings: two channels (left = customer, right = agent side), kept in GridFS.

A `Recorder` is fed one 20 ms frame per channel by the bridge's mixer and writes a
stereo 16-bit WAV to a temporary file (a long call would not fit in memory), which
`finish` uploads to the GridFS bucket `recordings` and describes in the `recordings`
collection:

    {_id, tenant_id, contact_id, channel, customer_id, queue_id, agent_ids, agent_names,
     file_id, sample_rate, channels: ["customer", "agent"], started_at, ended_at,
     duration_s, bytes, disclosure_played, deleted_at: None, delete_reason: None}

Tenant settings (`tenants.recording`): see `recording_settings`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import wave
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from gridfs.asynchronous import AsyncGridFSBucket

from hub.context import AppContext
from hub.db import Doc
from hub.ids import new_id, utcnow

log = logging.getLogger(__name__)

BUCKET = "recordings"
CHANNELS = ["customer", "agent"]
DEFAULT_DISCLOSURE = "This call may be recorded for quality and training purposes."


@dataclass(frozen=True)
class RecordingSettings:
    """A tenant's recording policy; the defaults record every call and keep it 90 days."""

    enabled: bool = True
    disclosure: bool = False  # play `disclosure_text` to the caller before recording starts
    disclosure_text: str = DEFAULT_DISCLOSURE
    retention_days: int = 90  # 0 = keep forever
    agents_play_own: bool = True  # agents may play recordings of their own calls

    @classmethod
    def from_doc(cls, doc: Doc | None) -> RecordingSettings:
        doc = doc or {}
        return cls(
            enabled=bool(doc.get("enabled", True)),
            disclosure=bool(doc.get("disclosure", False)),
            disclosure_text=str(doc.get("disclosure_text") or DEFAULT_DISCLOSURE),
            retention_days=int(doc.get("retention_days", 90)),
            agents_play_own=bool(doc.get("agents_play_own", True)),
        )

    def to_doc(self) -> Doc:
        return {
            "enabled": self.enabled,
            "disclosure": self.disclosure,
            "disclosure_text": self.disclosure_text,
            "retention_days": self.retention_days,
            "agents_play_own": self.agents_play_own,
        }


async def recording_settings(ctx: AppContext, tenant_id: str) -> RecordingSettings:
    tenant = await ctx.db.tenants.find_one({"_id": tenant_id}, {"recording": 1}) or {}
    return RecordingSettings.from_doc(tenant.get("recording"))


@dataclass(eq=False)
class Recorder:
    """Stereo WAV on disk while the call runs; `finish` stores it and removes the file."""

    tenant_id: str
    contact_id: str
    sample_rate: int
    meta: Doc = field(default_factory=dict)
    disclosure_played: bool = False
    started_at: datetime = field(default_factory=utcnow)
    agent_ids: list[str] = field(default_factory=list)
    agent_names: list[str] = field(default_factory=list)
    frames: int = 0

    def __post_init__(self) -> None:
        fd, name = tempfile.mkstemp(prefix=f"rec-{self.contact_id}-", suffix=".wav")
        os.close(fd)
        self.path = Path(name)
        self._wav: wave.Wave_write | None = wave.open(str(self.path), "wb")
        self._wav.setnchannels(2)
        self._wav.setsampwidth(2)
        self._wav.setframerate(self.sample_rate)

    def add_agent(self, agent_id: str | None, name: str | None) -> None:
        if agent_id and agent_id not in self.agent_ids:
            self.agent_ids.append(agent_id)
            self.agent_names.append(name or "")

    def write(self, customer: np.ndarray, agent: np.ndarray) -> None:
        """One frame of each channel (int16 arrays of equal length)."""
        if self._wav is None:
            return
        stereo = np.empty(customer.size * 2, dtype="<i2")
        stereo[0::2] = customer
        stereo[1::2] = agent
        self._wav.writeframes(stereo.tobytes())
        self.frames += customer.size

    def close(self) -> None:
        if self._wav is not None:
            self._wav.close()
            self._wav = None

    def discard(self) -> None:
        self.close()
        with contextlib.suppress(OSError):
            self.path.unlink()

    async def finish(self, ctx: AppContext) -> Doc | None:
        """Upload to GridFS and describe it; None (and nothing stored) for an empty recording."""
        self.close()
        try:
            if self.frames == 0:
                return None
            data = await asyncio.to_thread(self.path.read_bytes)
            return await store_recording(
                ctx,
                tenant_id=self.tenant_id,
                contact_id=self.contact_id,
                wav=data,
                sample_rate=self.sample_rate,
                duration_s=self.frames / self.sample_rate,
                started_at=self.started_at,
                agent_ids=self.agent_ids,
                agent_names=self.agent_names,
                disclosure_played=self.disclosure_played,
                extra=self.meta,
            )
        finally:
            with contextlib.suppress(OSError):
                self.path.unlink()


async def store_recording(
    ctx: AppContext,
    *,
    tenant_id: str,
    contact_id: str,
    wav: bytes,
    sample_rate: int,
    duration_s: float,
    started_at: datetime,
    agent_ids: list[str],
    agent_names: list[str] | None = None,
    disclosure_played: bool = False,
    extra: Doc | None = None,
) -> Doc:
    """Store a finished two-channel WAV and its `recordings` document (also used by tests)."""
    recording_id = new_id()
    file_id = new_id()
    grid = AsyncGridFSBucket(ctx.db.db, bucket_name=BUCKET)
    await grid.upload_from_stream_with_id(
        file_id,
        f"{recording_id}.wav",
        wav,
        metadata={"tenant_id": tenant_id, "contact_id": contact_id, "recording_id": recording_id},
    )
    contact = await ctx.db.contacts.find_one(
        {"_id": contact_id}, {"channel": 1, "customer_id": 1, "queue_id": 1}
    )
    contact = contact or {}
    doc: Doc = {
        "_id": recording_id,
        "tenant_id": tenant_id,
        "contact_id": contact_id,
        "channel": contact.get("channel"),
        "customer_id": contact.get("customer_id"),
        "queue_id": contact.get("queue_id"),
        "agent_ids": list(agent_ids),
        "agent_names": list(agent_names or []),
        "file_id": file_id,
        "sample_rate": sample_rate,
        "channels": list(CHANNELS),
        "started_at": started_at,
        "ended_at": started_at + timedelta(seconds=duration_s),
        "duration_s": round(duration_s, 2),
        "bytes": len(wav),
        "disclosure_played": disclosure_played,
        "deleted_at": None,
        "delete_reason": None,
        **(extra or {}),
    }
    await ctx.db.recordings.insert_one(doc)
    await ctx.db.contacts.update_one({"_id": contact_id}, {"$addToSet": {"recording_ids": recording_id}})
    return doc


async def open_recording(ctx: AppContext, recording: Doc) -> Any:
    """A GridFS download stream of the recording's WAV (the caller checks permissions)."""
    return await AsyncGridFSBucket(ctx.db.db, bucket_name=BUCKET).open_download_stream(recording["file_id"])


def read_channels(wav: bytes) -> tuple[int, np.ndarray, np.ndarray]:
    """(rate, customer, agent) samples of a stored recording; for tests and quality tools."""
    import io

    with wave.open(io.BytesIO(wav)) as reader:
        rate = reader.getframerate()
        samples = np.frombuffer(reader.readframes(reader.getnframes()), dtype="<i2")
    return rate, samples[0::2], samples[1::2]
