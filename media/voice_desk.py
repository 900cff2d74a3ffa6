"""The process's live voice desk: softphone lines, call bridges, invitations and call controls.

Who is where:
- a `Line` is one signed-in user's softphone (agent or supervisor); media/softphone.py
  connects it over WebRTC. A line is in at most one bridge at a time.
- a `Bridge` (media/bridge.py) per customer call that reached an agent, created when
  the caller joins it (media/call.py, after the agent announcement and the recording
  disclosure) and closed when the caller leaves it; internal calls have one too.
- an `Invite` rings another agent into a bridge: consult (the customer is held),
  conference (the customer keeps talking) or an internal call.

The customer's contact document stays the truth about who owns the call; this module
keeps the audio in step with it and asks the router to move the contact (transfers,
a dropped agent). Everything here is in memory: a call and the lines bridged to it run
in the same hub process.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np

from hub.contacts import update_contact
from hub.context import AppContext
from hub.db import Doc
from hub.ids import new_id, utcnow
from media.bridge import MAX_PARTIES, Bridge, BridgeFull, Leg, Mixer, Mode
from media.recording import Recorder
from routing.model import aware as _aware
from routing.presence import release, reserve, set_state

log = logging.getLogger(__name__)

DESK_KEY = "voice_desk"
INVITE_TIMEOUT_S = 30.0
DROP_GRACE_S = 5.0  # a line that comes back this soon (a reload) keeps its call
InviteKind = Literal["consult", "conference", "internal"]


class CallError(Exception):
    """A call control that cannot be done now; the message is for the user."""


@dataclass(eq=False)
class Line:
    """One user's softphone: audio in goes to the current leg, mixed audio out comes back.

    The outgoing audio is a short queue that the line's track pulls from at its own pace
    (media/softphone.py); it keeps at most `JITTER_FRAMES`, dropping the oldest, so the
    delay toward the user stays bounded whatever the two clocks do.
    """

    user_id: str
    tenant_id: str
    name: str
    role: Literal["agent", "supervisor"]
    rate: int = 16000
    id: str = field(default_factory=new_id)
    leg: Leg | None = None
    bridge: Bridge | None = None
    outbox: deque[bytes] = field(default_factory=deque)
    connected_at: float = field(default_factory=time.time)
    dropped_frames: int = 0
    silent_frames: int = 0

    JITTER_FRAMES: ClassVar[int] = 3

    def put(self, pcm: bytes) -> None:
        self.outbox.append(pcm)
        while len(self.outbox) > self.JITTER_FRAMES:
            self.outbox.popleft()
            self.dropped_frames += 1

    def pull(self, size: int) -> bytes:
        """The next frame for the browser (`size` bytes), or silence."""
        if self.outbox:
            pcm = self.outbox.popleft()
            return pcm if len(pcm) == size else pcm[:size].ljust(size, b"\x00")
        if self.leg is not None:
            self.silent_frames += 1
        return b"\x00" * size

    def attach(self, bridge: Bridge, leg: Leg) -> None:
        self.bridge, self.leg = bridge, leg
        leg.on_frame = self.put

    def detach(self) -> None:
        if self.leg is not None:
            self.leg.on_frame = None
        self.bridge, self.leg = None, None
        self.outbox.clear()

    def feed(self, pcm: bytes) -> None:
        if self.leg is not None:
            self.leg.feed(pcm)


@dataclass(eq=False)
class Invite:
    kind: InviteKind
    bridge: Bridge
    tenant_id: str
    from_user: str
    from_name: str
    to_user: str
    contact_id: str | None
    id: str = field(default_factory=new_id)
    expires_at: float = field(default_factory=lambda: time.time() + INVITE_TIMEOUT_S)


class VoiceDesk:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.mixer = Mixer()
        self.lines: dict[str, Line] = {}
        self.calls: dict[str, Bridge] = {}  # by contact id
        self.internal: dict[str, Bridge] = {}  # by bridge id
        self.invites: dict[str, Invite] = {}
        self._hold_writes: set[asyncio.Task[None]] = set()
        self._hold_locks: dict[str, asyncio.Lock] = {}
        self.slots: dict[tuple[str, str], str] = {}  # (bridge id, user) -> channel reserved
        self._drop_timers: dict[str, asyncio.Task[None]] = {}
        self.closed_underruns = 0  # of legs that have left, for stats()

    # ------------------------------------------------------------------------- lines
    async def register_line(self, line: Line) -> None:
        """A softphone connected (or reconnected): it takes over the user's old line and
        rejoins the call that user is on (a reload within the grace period keeps the call)."""
        timer = self._drop_timers.pop(line.user_id, None)
        if timer is not None:
            timer.cancel()
        old = self.lines.get(line.user_id)
        self.lines[line.user_id] = line
        if old is not None and old is not line and old.bridge is not None and old.leg is not None:
            line.attach(old.bridge, old.leg)
            old.detach()
            self._publish_line(line)
            return
        self._publish_line(line)
        if line.role == "agent":
            for bridge in self.calls.values():
                if bridge.contact_id and await self._owner(bridge.contact_id) == line.user_id:
                    self._join(bridge, line, "agent")
                    break

    def line_lost(self, line: Line) -> None:
        """The browser's peer connection closed or failed."""
        if self.lines.get(line.user_id) is not line:
            return  # replaced by a newer line already
        if line.bridge is None:
            del self.lines[line.user_id]
            self._publish_line(None, line.user_id)
            return
        self._drop_timers[line.user_id] = asyncio.get_running_loop().create_task(
            self._drop_after_grace(line), name=f"line-drop-{line.user_id}"
        )

    async def _drop_after_grace(self, line: Line) -> None:
        await asyncio.sleep(self.ctx.extra.get("softphone_grace_s", DROP_GRACE_S))
        self._drop_timers.pop(line.user_id, None)
        if self.lines.get(line.user_id) is not line:
            return
        del self.lines[line.user_id]
        bridge = line.bridge
        try:
            if bridge is not None:
                await self._line_dropped(line, bridge)
        except Exception:
            log.exception("line of %s dropped: clean-up failed", line.user_id)
        finally:
            self._publish_line(None, line.user_id)

    async def _line_dropped(self, line: Line, bridge: Bridge) -> None:
        """An agent's browser is gone: not-ready, and the caller goes back to the queue head."""
        owner = await self._owner(bridge.contact_id) if bridge.contact_id else None
        await self._leave(bridge, line)
        if line.role != "agent":
            return
        await set_state(self.ctx, line.user_id, "not_ready", reason="connection_lost")
        if bridge.contact_id and owner == line.user_id:
            others = [leg for leg in bridge.find(role="agent") if leg.user_id]
            if others and others[0].user_id:
                await self._hand_over(bridge, line.user_id, others[0].user_id)
                return
            log.warning(
                "agent %s dropped on call %s: back to the queue head", line.user_id, bridge.contact_id
            )
            await self.ctx.require_router().requeue(
                bridge.contact_id, line.user_id, bridge.tenant_id, reason="agent_connection_lost", head=True
            )

    def line_of(self, user_id: str) -> Line | None:
        return self.lines.get(user_id)

    def _publish_line(self, line: Line | None, user_id: str | None = None) -> None:
        uid = line.user_id if line is not None else user_id
        self.ctx.bus.publish(f"user:{uid}", {"type": "softphone", "call": self.call_view_for(uid)})

    # ------------------------------------------------------------------------- customer side
    async def customer_joins(
        self, contact: Doc, leg: Leg, recorder: Recorder | None, hold_music: bytes | None = None
    ) -> Bridge:
        """The caller is through to the agent (media/call.py): open the bridge, bring the
        owner's softphone in, start recording."""
        contact_id = contact["_id"]
        old = self.calls.pop(contact_id, None)
        if old is not None:
            await self._close(old)
        bridge = Bridge(contact["tenant_id"], contact_id, recorder=recorder)
        if hold_music:  # the queue's music (MIX_RATE PCM) for when the agent holds the caller
            bridge.hold_music = np.frombuffer(hold_music, dtype="<i2")
        bridge.add(leg)
        self.calls[contact_id] = bridge
        self.mixer.add(bridge)
        agent_id = contact.get("agent_id")
        line = self.lines.get(agent_id) if agent_id else None
        if line is not None:
            if line.bridge is not None:
                await self._leave(line.bridge, line)
            self._join(bridge, line, "agent")
        elif recorder is not None:
            recorder.add_agent(agent_id, contact.get("agent_name"))
        self._publish_call(bridge)
        return bridge

    async def customer_leaves(self, contact_id: str) -> None:
        """The caller left the agent part (hung up, transferred, survey, back to the IVR):
        every other party is let go and the recording is stored."""
        bridge = self.calls.pop(contact_id, None)
        if bridge is not None:
            await self._close(bridge)

    def _set_held(self, bridge: Bridge, customer: Leg, on: bool) -> None:
        """Hold or resume the caller, and keep the contact's hold time for reports (a hold
        by the agent's button or while a colleague is consulted)."""
        if customer.held == on:
            return
        customer.held = on
        if bridge.contact_id is not None:
            task = asyncio.get_running_loop().create_task(self._record_hold(bridge.contact_id, on))
            self._hold_writes.add(task)
            task.add_done_callback(self._hold_writes.discard)

    async def _record_hold(self, contact_id: str, on: bool) -> None:
        """`hold_since` while held; `hold_s` adds up the finished holds (reports/facts.py).
        One contact's writes run in the order of the holds (a quick hold + resume)."""
        lock = self._hold_locks.setdefault(contact_id, asyncio.Lock())
        async with lock:
            await self._write_hold(contact_id, on)
        if not lock.locked():
            self._hold_locks.pop(contact_id, None)

    async def _write_hold(self, contact_id: str, on: bool) -> None:
        try:
            if on:
                await self.ctx.db.contacts.update_one(
                    {"_id": contact_id, "hold_since": None},
                    {"$set": {"hold_since": utcnow(), "updated_at": utcnow()}},
                )
                return
            contact = await self.ctx.db.contacts.find_one({"_id": contact_id}, {"hold_since": 1})
            since = (contact or {}).get("hold_since")
            if since is None:
                return
            held_s = max(0.0, (utcnow() - _aware(since)).total_seconds())
            await self.ctx.db.contacts.update_one(
                {"_id": contact_id, "hold_since": since},
                {"$set": {"hold_since": None, "updated_at": utcnow()}, "$inc": {"hold_s": round(held_s, 3)}},
            )
        except Exception:  # the call goes on whatever the database does
            log.exception("call %s: recording the hold time failed", contact_id)

    async def _close(self, bridge: Bridge) -> None:
        customer = self._customer(bridge)
        if customer is not None and customer.held:
            self._set_held(bridge, customer, False)  # a call ended on hold: the hold ends with it
        self.mixer.discard(bridge)
        for invite in [i for i in self.invites.values() if i.bridge is bridge]:
            self._drop_invite(invite, "ended")
        for line in [line for line in self.lines.values() if line.bridge is bridge]:
            line.detach()
            self._publish_line(line)
        for (bridge_id, user_id), channel in list(self.slots.items()):
            if bridge_id == bridge.id:
                del self.slots[(bridge_id, user_id)]
                await release(self.ctx, user_id, channel)
        self.closed_underruns += sum(leg.underruns for leg in bridge.legs)
        bridge.legs.clear()
        bridge.changed()
        recorder, bridge.recorder = bridge.recorder, None
        if recorder is not None:
            try:
                await recorder.finish(self.ctx)
            except Exception:
                log.exception("call %s: storing the recording failed", bridge.contact_id)
        self._publish_call(bridge, ended=True)

    # ------------------------------------------------------------------------- joining
    def _join(
        self, bridge: Bridge, line: Line, role: Literal["agent", "supervisor"], mode: Mode = "talk"
    ) -> Leg:
        leg = bridge.add(Leg(role, line.rate, user_id=line.user_id, name=line.name, mode=mode))
        line.attach(bridge, leg)
        if bridge.recorder is not None and role == "agent":
            bridge.recorder.add_agent(line.user_id, line.name)
        self._publish_line(line)
        self._publish_call(bridge)
        return leg

    async def _leave(self, bridge: Bridge, line: Line, *, ending: bool = False) -> None:
        """The line leaves the bridge and gives back a slot it took for it; an internal call
        ends with its second-last party (`ending`: the bridge is closing anyway)."""
        if line.leg is not None:
            bridge.remove(line.leg)
        line.detach()
        channel = self.slots.pop((bridge.id, line.user_id), None)
        if channel is not None:
            await release(self.ctx, line.user_id, channel)
        self._publish_line(line)
        if ending:
            return
        self._publish_call(bridge)
        if bridge.contact_id is None and len(bridge.legs) < 2:
            await self._end_internal(bridge)

    async def _owner(self, contact_id: str | None) -> str | None:
        if contact_id is None:
            return None
        contact = await self.ctx.db.contacts.find_one({"_id": contact_id}, {"agent_id": 1, "status": 1})
        if contact is None or contact.get("status") != "assigned":
            return None
        owner: str | None = contact.get("agent_id")
        return owner

    # ------------------------------------------------------------------------- lookups
    def call(self, contact_id: str, tenant_id: str) -> Bridge:
        bridge = self.calls.get(contact_id)
        if bridge is None or bridge.tenant_id != tenant_id:
            raise CallError("this call is not connected on this hub")
        return bridge

    def bridge_of(self, user_id: str) -> Bridge:
        line = self.lines.get(user_id)
        if line is None or line.bridge is None:
            raise CallError("you are not on a call")
        return line.bridge

    def _my_leg(self, bridge: Bridge, user_id: str) -> Leg:
        legs = bridge.find(user_id=user_id)
        if not legs:
            raise CallError("you are not on this call")
        return legs[0]

    def _customer(self, bridge: Bridge) -> Leg | None:
        legs = bridge.find(role="customer")
        return legs[0] if legs else None

    # ------------------------------------------------------------------------- controls
    async def hold(self, contact_id: str, tenant_id: str, user_id: str, on: bool) -> None:
        bridge = self.call(contact_id, tenant_id)
        self._my_leg(bridge, user_id)
        customer = self._customer(bridge)
        if customer is None:
            raise CallError("the caller is not on the line")
        self._set_held(bridge, customer, on)
        customer.clear_input()
        bridge.changed()
        self._publish_call(bridge)

    async def mute(self, user_id: str, on: bool) -> None:
        bridge = self.bridge_of(user_id)
        leg = self._my_leg(bridge, user_id)
        leg.muted = on
        bridge.changed()
        self._publish_call(bridge)

    async def dtmf(self, user_id: str, digits: str) -> None:
        """Key tones from the agent's keypad to the other parties (e.g. an external IVR)."""
        from media.dtmf import dtmf_pcm

        bridge = self.bridge_of(user_id)
        leg = self._my_leg(bridge, user_id)
        leg.play(dtmf_pcm(digits, leg.rate))

    async def monitor(self, contact_id: str, tenant_id: str, user_id: str, mode: Mode) -> None:
        """A supervisor listens, whispers to the agent, or barges in (from any of these to any)."""
        if mode not in ("listen", "whisper", "barge"):
            raise CallError("mode must be listen, whisper or barge")
        bridge = self.call(contact_id, tenant_id)
        line = self.lines.get(user_id)
        if line is None:
            raise CallError("connect your softphone first")
        legs = bridge.find(user_id=user_id)
        if legs:
            legs[0].mode = mode
            bridge.changed()
        else:
            if line.bridge is not None:
                await self._leave(line.bridge, line)
            try:
                self._join(bridge, line, "supervisor", mode)
            except BridgeFull as exc:
                raise CallError(str(exc)) from exc
        self._publish_call(bridge)

    async def leave(self, user_id: str) -> Bridge:
        """A supervisor stops monitoring, a conference party or consulted agent hangs up."""
        bridge = self.bridge_of(user_id)
        line = self.lines[user_id]
        await self._leave(bridge, line)
        return bridge

    async def agent_hangs_up(self, contact_id: str, tenant_id: str, user_id: str, after: str) -> None:
        """The owner hangs up: with other agents still on, the call is theirs; else the
        caller goes on to `after` (survey, ivr or end) and the agent to wrap-up."""
        if after not in ("survey", "ivr", "end"):
            raise CallError("after must be survey, ivr or end")
        bridge = self.call(contact_id, tenant_id)
        owner = await self._owner(contact_id)
        others = [leg.user_id for leg in bridge.find(role="agent") if leg.user_id and leg.user_id != owner]
        if owner == user_id and others and others[0]:
            line = self.lines.get(user_id)
            if line is not None:
                await self._leave(bridge, line)
            await self._hand_over(bridge, user_id, others[0])
            return
        if owner != user_id and not self._is_supervisor_leg(bridge, user_id):
            line = self.lines.get(user_id)
            if line is None or line.bridge is not bridge:
                raise CallError("you are not on this call")
            await self._leave(bridge, line)
            return
        await self._end_agent_part(contact_id, after, {"agent_hung_up_at": utcnow(), "after_agent": after})

    async def force_release(self, contact_id: str, tenant_id: str, by: str) -> None:
        """A supervisor ends the call for everyone; the agent wraps up as after any call."""
        self.call(contact_id, tenant_id)
        await self._end_agent_part(contact_id, "end", {"released_by": by, "released_at": utcnow()})

    async def _end_agent_part(self, contact_id: str, after: str, record: Doc) -> None:
        """Tell the caller's pipeline (media/call.py) to leave the bridge and go on to `after`."""
        self.ctx.bus.publish(
            f"contact:{contact_id}", {"type": "call_control", "action": "agent_hangup", "after": after}
        )
        await update_contact(self.ctx, contact_id, record)

    def _is_supervisor_leg(self, bridge: Bridge, user_id: str) -> bool:
        return any(leg.role == "supervisor" for leg in bridge.find(user_id=user_id))

    async def transfer(
        self,
        contact_id: str,
        tenant_id: str,
        user_id: str,
        *,
        agent_id: str | None = None,
        queue_id: str | None = None,
        skill: str | None = None,
    ) -> Doc:
        """Blind transfer: the caller waits (with hold music) for the queue, skill or agent."""
        self.call(contact_id, tenant_id)
        if not (agent_id or queue_id or skill):
            raise CallError("name an agent, a queue or a skill")
        if agent_id == user_id:
            raise CallError("you cannot transfer a call to yourself")
        return await self.ctx.require_router().requeue(
            contact_id,
            user_id,
            tenant_id,
            reason="transfer",
            queue_id=queue_id,
            skill=skill,
            to_agent_id=agent_id,
        )

    # ------------------------------------------------------------------------- invites
    async def invite(
        self, kind: InviteKind, user_id: str, tenant_id: str, to_user: str, contact_id: str | None
    ) -> Invite:
        """Ring another agent into this call (consult holds the caller) or start an internal call."""
        if to_user == user_id:
            raise CallError("you cannot call yourself")
        target = await self.ctx.db.users.find_one({"_id": to_user, "tenant_id": tenant_id})
        if target is None:
            raise CallError("no such agent")
        me = self.lines.get(user_id)
        if me is None:
            raise CallError("connect your softphone first")
        if kind == "internal":
            if me.bridge is not None:
                raise CallError("hang up your current call first")
            bridge = Bridge(tenant_id, None)
            self.internal[bridge.id] = bridge
            self.mixer.add(bridge)
            await self._reserve(bridge, user_id)
            self._join(bridge, me, "agent")
        else:
            assert contact_id is not None
            bridge = self.call(contact_id, tenant_id)
            self._my_leg(bridge, user_id)
            if len(bridge.legs) >= MAX_PARTIES:
                raise CallError(f"a call has at most {MAX_PARTIES} parties")
            if kind == "consult":
                customer = self._customer(bridge)
                if customer is not None:
                    self._set_held(bridge, customer, True)
                    bridge.changed()
        invite = Invite(kind, bridge, tenant_id, user_id, me.name, to_user, contact_id)
        self.invites[invite.id] = invite
        self.ctx.bus.publish(f"user:{to_user}", {"type": "call_invite", "invite": self.invite_view(invite)})
        asyncio.get_running_loop().call_later(INVITE_TIMEOUT_S, self._expire_invite, invite.id)
        self._publish_call(bridge)
        return invite

    def _expire_invite(self, invite_id: str) -> None:
        invite = self.invites.get(invite_id)
        if invite is not None:
            asyncio.get_running_loop().create_task(self.decline(invite_id, invite.to_user, "no_answer"))

    def _drop_invite(self, invite: Invite, why: str) -> None:
        self.invites.pop(invite.id, None)
        event = {"type": "call_invite_ended", "invite_id": invite.id, "why": why}
        self.ctx.bus.publish(f"user:{invite.to_user}", event)
        self.ctx.bus.publish(f"user:{invite.from_user}", event)

    async def accept(self, invite_id: str, user_id: str) -> Invite:
        invite = self.invites.get(invite_id)
        if invite is None or invite.to_user != user_id:
            raise CallError("this invitation is no longer open")
        line = self.lines.get(user_id)
        if line is None:
            raise CallError("connect your softphone first")
        if line.bridge is not None:
            raise CallError("hang up your current call first")
        if not await self._reserve(invite.bridge, user_id):
            raise CallError("you have no free voice slot")
        del self.invites[invite_id]
        self._join(invite.bridge, line, "agent")
        self.ctx.bus.publish(
            f"user:{invite.from_user}",
            {"type": "call_invite_ended", "invite_id": invite.id, "why": "accepted"},
        )
        return invite

    async def decline(self, invite_id: str, user_id: str, why: str = "declined") -> None:
        invite = self.invites.get(invite_id)
        if invite is None or user_id not in (invite.to_user, invite.from_user):
            raise CallError("this invitation is no longer open")
        self._drop_invite(invite, why)
        bridge = invite.bridge
        if invite.kind == "consult":
            self._unhold_if_alone(bridge)
        if bridge.contact_id is None:
            await self._end_internal(bridge)

    def _unhold_if_alone(self, bridge: Bridge) -> None:
        customer = self._customer(bridge)
        if customer is not None and customer.held and len(bridge.find(role="agent")) <= 1:
            self._set_held(bridge, customer, False)
            bridge.changed()
            self._publish_call(bridge)

    async def complete_consult(self, contact_id: str, tenant_id: str, user_id: str) -> Doc:
        """The consulted agent takes the call; the one who consulted leaves."""
        bridge = self.call(contact_id, tenant_id)
        if await self._owner(contact_id) != user_id:
            raise CallError("only the agent who owns the call can complete the transfer")
        others = [leg.user_id for leg in bridge.find(role="agent") if leg.user_id and leg.user_id != user_id]
        if not others or others[0] is None:
            raise CallError("nobody to transfer to yet")
        line = self.lines.get(user_id)
        if line is not None:
            await self._leave(bridge, line)
        return await self._hand_over(bridge, user_id, others[0])

    async def cancel_consult(self, contact_id: str, tenant_id: str, user_id: str) -> None:
        """Back to the caller: the consulted agents leave (pending invitations are dropped)."""
        bridge = self.call(contact_id, tenant_id)
        for invite in [i for i in self.invites.values() if i.bridge is bridge]:
            self._drop_invite(invite, "cancelled")
        for leg in bridge.find(role="agent"):
            if leg.user_id and leg.user_id != user_id:
                line = self.lines.get(leg.user_id)
                if line is not None and line.leg is leg:
                    await self._leave(bridge, line)
                else:
                    bridge.remove(leg)
        customer = self._customer(bridge)
        if customer is not None:
            self._set_held(bridge, customer, False)
            bridge.changed()
        self._publish_call(bridge)

    async def _hand_over(self, bridge: Bridge, from_user: str, to_user: str) -> Doc:
        assert bridge.contact_id is not None
        self.slots.pop((bridge.id, to_user), None)  # the slot is now the contact's own
        contact = await self.ctx.require_router().hand_over(
            bridge.contact_id, from_user, to_user, bridge.tenant_id
        )
        customer = self._customer(bridge)
        if customer is not None:
            self._set_held(bridge, customer, False)
            bridge.changed()
        self._publish_call(bridge)
        return contact

    async def _reserve(self, bridge: Bridge, user_id: str) -> bool:
        if await reserve(self.ctx, user_id, "voice", any_state=True) is None:
            return False
        self.slots[(bridge.id, user_id)] = "voice"
        return True

    async def _end_internal(self, bridge: Bridge) -> None:
        if self.internal.pop(bridge.id, None) is None:
            return
        for invite in [i for i in self.invites.values() if i.bridge is bridge]:
            self._drop_invite(invite, "ended")
        for line in [line for line in self.lines.values() if line.bridge is bridge]:
            await self._leave(bridge, line, ending=True)
        self.mixer.discard(bridge)
        self._publish_call(bridge, ended=True)

    # ------------------------------------------------------------------------- views
    def invite_view(self, invite: Invite) -> dict[str, Any]:
        return {
            "id": invite.id,
            "kind": invite.kind,
            "from_user": invite.from_user,
            "from_name": invite.from_name,
            "contact_id": invite.contact_id,
            "bridge_id": invite.bridge.id,
            "expires_in_s": max(0, round(invite.expires_at - time.time())),
        }

    def bridge_view(self, bridge: Bridge) -> dict[str, Any]:
        return {
            "bridge_id": bridge.id,
            "contact_id": bridge.contact_id,
            "internal": bridge.contact_id is None,
            "started_at": bridge.created_at,
            "duration_s": round(time.time() - bridge.created_at),
            "recording": bridge.recorder is not None,
            "parties": [
                {
                    "leg_id": leg.id,
                    "role": leg.role,
                    "user_id": leg.user_id,
                    "name": leg.name,
                    "mode": leg.mode,
                    "muted": leg.muted,
                    "held": leg.held,
                }
                for leg in bridge.legs
            ],
            "invites": [self.invite_view(i) for i in self.invites.values() if i.bridge is bridge],
        }

    def call_view_for(self, user_id: str | None) -> dict[str, Any] | None:
        line = self.lines.get(user_id) if user_id else None
        if line is None:
            return {"connected": False, "bridge": None}
        return {"connected": True, "bridge": self.bridge_view(line.bridge) if line.bridge else None}

    def live_calls(self, tenant_id: str) -> list[dict[str, Any]]:
        bridges = [*self.calls.values(), *self.internal.values()]
        return [self.bridge_view(b) for b in bridges if b.tenant_id == tenant_id]

    def _publish_call(self, bridge: Bridge, ended: bool = False) -> None:
        view = self.bridge_view(bridge)
        view["ended"] = ended
        event = {"type": "call", "call": view}
        self.ctx.bus.publish(f"tenant:{bridge.tenant_id}", event)
        for leg in bridge.legs:
            if leg.user_id:
                self.ctx.bus.publish(
                    f"user:{leg.user_id}", {"type": "softphone", "call": self.call_view_for(leg.user_id)}
                )

    def stats(self) -> dict[str, Any]:
        """Mixer health for operators and bench.bridge: late ticks mean the hub's CPU is short."""
        bridges = [*self.calls.values(), *self.internal.values()]
        legs = [leg for bridge in bridges for leg in bridge.legs]
        return {
            "calls": len(self.calls),
            "internal_calls": len(self.internal),
            "lines": len(self.lines),
            "legs": len(legs),
            "ticks": self.mixer.ticks,
            "late_ticks": self.mixer.late_ticks,
            "mix_cpu_s": round(self.mixer.tick_cpu_s, 3),
            "underruns": self.closed_underruns + sum(leg.underruns for leg in legs),
            "recording": sum(1 for bridge in bridges if bridge.recorder is not None),
        }

    async def close(self) -> None:
        for bridge in list(self.calls.values()):
            await self._close(bridge)
        await self.mixer.stop()


def voice_desk(ctx: AppContext) -> VoiceDesk:
    desk = ctx.extra.get(DESK_KEY)
    if desk is None:
        desk = VoiceDesk(ctx)
        ctx.extra[DESK_KEY] = desk
    assert isinstance(desk, VoiceDesk)
    return desk
