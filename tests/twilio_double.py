"""A local stand-in for Twilio: the REST API the `twilio` client calls, and the callbacks.

`TwilioDouble` serves, on a loopback port in a thread of its own (so a test blocked in a
sync call never starves it), what the hub's real `twilio.rest.Client` uses:

- `POST /2010-04-01/Accounts/{AccountSid}/Calls.json`: create a call (HTTP Basic auth
  checked; To, From and Url required as Twilio requires them), answered with a JSON body
  shaped like Twilio's (`sid` "CA…", `status` "queued", ...);
- `GET|POST .../Calls/{sid}.json`: fetch, or update (Status=completed / canceled hangs up,
  then the completed status callback follows, as Twilio sends it; Twiml / Url are recorded);
- `POST .../Messages.json`: send an SMS ("SM…", "queued").

Errors use Twilio's error body (`code`, `message`, `more_info`, `status`); `fail_next`
makes the next request fail the way a test needs. Every request is recorded. Besides the
hub's own account, `add_account` opens more (a tenant's own Twilio account): requests are
accepted under any known Account SID with its token, and the callbacks of a call or message
carry the account it was created under, signed with that account's token.

The test drives each call's life with `ring`, `answer`, `busy`, `no_answer`, `fail` and
`complete`: each POSTs the status (and AMD) callbacks to the URLs the call was created
with, form-encoded and signed with X-Twilio-Signature exactly as Twilio does (HMAC-SHA1
of the URL and the sorted parameters, with the account's auth token). `answer` also
fetches the call's `Url` (a signed POST) and returns the TwiML, to open the media stream
with tests/voice_support.py's TwilioCaller.
"""

from __future__ import annotations

import asyncio
import base64
import math
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import format_datetime
from typing import Any

import httpx
import uvicorn
from fastapi import BackgroundTasks, FastAPI, Request
from fastapi.responses import JSONResponse
from twilio.request_validator import RequestValidator

from hub.embedded_db import free_port
from hub.ids import utcnow
from tests.support import TWILIO_TOKEN

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
API = "/2010-04-01/Accounts/{account}"
# Twilio's status callback events -> the CallStatus values each one reports
EVENT_OF_STATUS = {
    "initiated": "initiated",
    "ringing": "ringing",
    "in-progress": "answered",
    "completed": "completed",
    "busy": "completed",
    "no-answer": "completed",
    "failed": "completed",
    "canceled": "completed",
}
SIP_CODES = {"completed": "200", "busy": "486", "no-answer": "487", "failed": "500", "canceled": "487"}


def twilio_error(status: int, code: int, message: str) -> JSONResponse:
    """An error the way Twilio's REST API answers it."""
    return JSONResponse(
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
        status_code=status,
    )


@dataclass
class RecordedRequest:
    method: str
    path: str
    form: dict[str, list[str]]
    auth_ok: bool

    def get(self, name: str) -> str | None:
        values = self.form.get(name)
        return values[0] if values else None


@dataclass
class FakeCall:
    sid: str
    to: str
    from_: str
    form: dict[str, list[str]]
    status: str = "queued"
    created: float = field(default_factory=time.time)
    answered: float | None = None
    sequence: int = 0
    twiml: str | None = None
    updates: list[dict[str, list[str]]] = field(default_factory=list)
    account_sid: str = ""  # the account the call was created under

    def get(self, name: str) -> str | None:
        values = self.form.get(name)
        return values[0] if values else None

    @property
    def events(self) -> set[str]:
        return {*self.form.get("StatusCallbackEvent", []), "completed"}

    def resource(self, account_sid: str) -> dict[str, Any]:
        """The call as Twilio's JSON shows it."""
        now = format_datetime(utcnow(), usegmt=True)
        uri = f"/2010-04-01/Accounts/{account_sid}/Calls/{self.sid}.json"
        return {
            "sid": self.sid,
            "account_sid": account_sid,
            "parent_call_sid": None,
            "date_created": now,
            "date_updated": now,
            "to": self.to,
            "to_formatted": self.to,
            "from": self.from_,
            "from_formatted": self.from_,
            "phone_number_sid": None,
            "status": self.status,
            "start_time": None,
            "end_time": None,
            "duration": None,
            "price": None,
            "price_unit": "USD",
            "direction": "outbound-api",
            "answered_by": None,
            "api_version": "2010-04-01",
            "forwarded_from": None,
            "group_sid": None,
            "caller_name": None,
            "queue_time": "0",
            "trunk_sid": None,
            "annotation": None,
            "uri": uri,
            "subresource_uris": {
                "notifications": uri.replace(".json", "/Notifications.json"),
                "recordings": uri.replace(".json", "/Recordings.json"),
            },
        }


class TwilioDouble:
    """Twilio's REST API on a loopback port, plus helpers that play Twilio's callbacks."""

    def __init__(
        self, port: int | None = None, account_sid: str = ACCOUNT_SID, auth_token: str = TWILIO_TOKEN
    ) -> None:
        self.port = port or free_port()
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.accounts: dict[str, str] = {account_sid: auth_token}
        self.requests: list[RecordedRequest] = []
        self.calls: dict[str, FakeCall] = {}
        self.messages: dict[str, dict[str, Any]] = {}
        self.callbacks: list[tuple[str, dict[str, str], int]] = []  # (url, params, hub's status)
        self._failures: list[tuple[int, int, str]] = []
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.app = self._build_app()

    # -- lifecycle -----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """What a hub process needs to use this double as its Twilio."""
        return {
            "TWILIO_API_BASE": self.url,
            "TWILIO_ACCOUNT_SID": self.account_sid,
            "TWILIO_AUTH_TOKEN": self.auth_token,
        }

    def start(self) -> None:
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="twilio-double", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the Twilio double did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(10)

    def add_account(self, account_sid: str, auth_token: str) -> None:
        """Another Twilio account (e.g. a tenant's own) the double accepts from now on."""
        with self._lock:
            self.accounts[account_sid] = auth_token

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.calls.clear()
            self.messages.clear()
            self.callbacks.clear()
            self._failures.clear()

    def fail_next(
        self, status: int = 400, code: int = 21211, message: str = "Invalid 'To' Phone Number"
    ) -> None:
        """The next REST request is answered with this Twilio error."""
        with self._lock:
            self._failures.append((status, code, message))

    def clear_failures(self) -> None:
        with self._lock:
            self._failures.clear()

    # -- what was asked ------------------------------------------------------------------------
    def creates(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == "POST" and r.path.endswith("/Calls.json")]

    def updates(self, sid: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == "POST" and r.path.endswith(f"/Calls/{sid}.json")]

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 10) -> Any:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError("the Twilio double did not see that in time")
            await asyncio.sleep(0.05)

    # -- the REST API ----------------------------------------------------------------------------
    def _build_app(self) -> FastAPI:
        app = FastAPI()

        @app.post(API + "/Calls.json")
        async def create_call(account: str, request: Request) -> JSONResponse:
            form, failure = await self._receive(account, request)
            if failure is not None:
                return failure
            to, from_ = _first(form, "To"), _first(form, "From")
            if not to:
                return twilio_error(400, 21201, "No 'To' number is specified")
            if not from_:
                return twilio_error(400, 21213, "No 'From' number is specified")
            if not (_first(form, "Url") or _first(form, "Twiml") or _first(form, "ApplicationSid")):
                return twilio_error(400, 21205, "Url parameter is required.")
            call = FakeCall(
                sid="CA" + secrets.token_hex(16), to=to, from_=from_, form=form, account_sid=account
            )
            with self._lock:
                self.calls[call.sid] = call
            return JSONResponse(call.resource(account), status_code=201)

        @app.get(API + "/Calls/{sid}.json")
        async def fetch_call(account: str, sid: str, request: Request) -> JSONResponse:
            _, failure = await self._receive(account, request)
            if failure is not None:
                return failure
            call = self.calls.get(sid)
            if call is None:
                return _not_found(request)
            return JSONResponse(call.resource(account))

        @app.post(API + "/Calls/{sid}.json")
        async def update_call(
            account: str, sid: str, request: Request, tasks: BackgroundTasks
        ) -> JSONResponse:
            form, failure = await self._receive(account, request)
            if failure is not None:
                return failure
            call = self.calls.get(sid)
            if call is None:
                return _not_found(request)
            call.updates.append(form)
            wanted = _first(form, "Status")
            if wanted in ("completed", "canceled") and call.status in ("queued", "initiated", "ringing"):
                tasks.add_task(self._finish, call, "canceled", 0)  # a call not yet answered is canceled
            elif wanted == "completed" and call.status == "in-progress":
                tasks.add_task(self._finish, call, "completed", _seconds_since(call.answered))
            if _first(form, "Twiml"):
                call.twiml = _first(form, "Twiml")
            return JSONResponse(call.resource(account))

        @app.post(API + "/Messages.json")
        async def create_message(account: str, request: Request) -> JSONResponse:
            form, failure = await self._receive(account, request)
            if failure is not None:
                return failure
            to, from_ = _first(form, "To"), _first(form, "From") or _first(form, "MessagingServiceSid")
            if not to:
                return twilio_error(400, 21604, "A 'To' phone number is required.")
            if not from_:
                return twilio_error(400, 21603, "A 'From' phone number is required.")
            if not (_first(form, "Body") or _first(form, "MediaUrl")):
                return twilio_error(400, 21602, "Message body is required.")
            sid = "SM" + secrets.token_hex(16)
            message = {
                "sid": sid,
                "account_sid": account,
                "to": to,
                "from": _first(form, "From"),
                "messaging_service_sid": _first(form, "MessagingServiceSid"),
                "body": _first(form, "Body"),
                "status": "queued",
                "direction": "outbound-api",
                "num_segments": "1",
                "api_version": "2010-04-01",
                "date_created": format_datetime(utcnow(), usegmt=True),
                "error_code": None,
                "error_message": None,
                "price": None,
                "uri": f"/2010-04-01/Accounts/{account}/Messages/{sid}.json",
                "status_callback": _first(form, "StatusCallback"),
            }
            with self._lock:
                self.messages[sid] = message
            return JSONResponse(message, status_code=201)

        @app.get(API + "/Messages.json")
        async def list_messages(account: str, request: Request) -> JSONResponse:
            _, failure = await self._receive(account, request)
            if failure is not None:
                return failure
            to, from_ = request.query_params.get("To"), request.query_params.get("From")
            found = [
                m
                for m in self.messages.values()
                if (to is None or m["to"] == to) and (from_ is None or m["from"] == from_)
            ]
            uri = request.url.path
            return JSONResponse(
                {
                    "messages": found,
                    "first_page_uri": uri,
                    "next_page_uri": None,
                    "previous_page_uri": None,
                    "page": 0,
                    "page_size": 50,
                    "start": 0,
                    "end": max(0, len(found) - 1),
                    "uri": uri,
                }
            )

        return app

    # -- Messaging -----------------------------------------------------------------------------
    def message_creates(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == "POST" and r.path.endswith("/Messages.json")]

    def sent_messages(self, to: str | None = None) -> list[dict[str, Any]]:
        return [m for m in self.messages.values() if to is None or m["to"] == to]

    async def deliver(self, sid: str, status: str = "delivered") -> httpx.Response | None:
        """Twilio reports an outbound message's fate to its StatusCallback."""
        message = self.messages[sid]
        message["status"] = status
        url = message.get("status_callback")
        if not url:
            return None
        params = {
            "AccountSid": message.get("account_sid") or self.account_sid,
            "MessageSid": sid,
            "SmsSid": sid,
            "MessageStatus": status,
            "SmsStatus": status,
            "To": message["to"],
            "From": message["from"] or "",
            "ApiVersion": "2010-04-01",
        }
        if status in ("undelivered", "failed"):
            params["ErrorCode"] = "30003"
        return await self.post(url, params)

    async def inbound_sms(
        self, url: str, from_: str, to: str, body: str, *, sid: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        """A customer's SMS arrives at the hub's webhook (signed; `token`/`signature` forge it)."""
        params = {
            "AccountSid": self.account_sid,
            "MessageSid": sid or "SM" + secrets.token_hex(16),
            "SmsSid": sid or "",
            "From": from_,
            "To": to,
            "Body": body,
            "NumSegments": "1",
            "NumMedia": "0",
            "ApiVersion": "2010-04-01",
        }
        return await self.post(url, params, **kwargs)

    async def _receive(
        self, account: str, request: Request
    ) -> tuple[dict[str, list[str]], JSONResponse | None]:
        """Record the request; the error to answer instead (bad auth, an injected failure)."""
        raw = await request.form()
        form: dict[str, list[str]] = {}
        for key, value in raw.multi_items():
            form.setdefault(key, []).append(str(value))
        auth_ok = self._auth_ok(request.headers.get("authorization", ""), account)
        with self._lock:
            self.requests.append(RecordedRequest(request.method, request.url.path, form, auth_ok))
            failure = self._failures.pop(0) if self._failures and auth_ok else None
        if not auth_ok:
            return form, twilio_error(401, 20003, "Authenticate")
        if failure is not None:
            return form, twilio_error(*failure)
        return form, None

    def _auth_ok(self, header: str, account: str) -> bool:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except ValueError:
            return False
        return user == account and self.accounts.get(user) == password

    # -- Twilio's side of a call -----------------------------------------------------------------
    def call_params(self, call: FakeCall, status: str) -> dict[str, str]:
        """The parameters Twilio posts with every voice callback."""
        call.sequence += 1
        return {
            "AccountSid": call.account_sid or self.account_sid,
            "ApiVersion": "2010-04-01",
            "CallSid": call.sid,
            "CallStatus": status,
            "Called": call.to,
            "Caller": call.from_,
            "Direction": "outbound-api",
            "From": call.from_,
            "To": call.to,
            "CallbackSource": "call-progress-events",
            "SequenceNumber": str(call.sequence - 1),
            "Timestamp": format_datetime(utcnow(), usegmt=True),
        }

    def sign(self, url: str, params: dict[str, str], token: str | None = None) -> str:
        token = token or self.accounts.get(params.get("AccountSid", ""), self.auth_token)
        return str(RequestValidator(token).compute_signature(url, params))

    async def post(
        self, url: str, params: dict[str, str], *, token: str | None = None, signature: str | None = None
    ) -> httpx.Response:
        """POST a callback as Twilio does; `token` / `signature` forge it for negative tests."""
        sig = signature if signature is not None else self.sign(url, params, token)
        async with httpx.AsyncClient(timeout=15) as http:
            response = await http.post(
                url,
                data=params,
                headers={"X-Twilio-Signature": sig, "User-Agent": "TwilioProxy/1.1"},
            )
        with self._lock:
            self.callbacks.append((url, params, response.status_code))
        return response

    async def _status(self, call: FakeCall, status: str, **extra: str) -> httpx.Response | None:
        call.status = status
        url = call.get("StatusCallback")
        if not url or EVENT_OF_STATUS[status] not in call.events:
            return None
        return await self.post(url, {**self.call_params(call, status), **extra})

    async def _finish(self, call: FakeCall, status: str, duration: int) -> httpx.Response | None:
        extra = {
            "CallDuration": str(duration),
            "Duration": str(math.ceil(duration / 60)),
            "SipResponseCode": SIP_CODES[status],
        }
        return await self._status(call, status, **extra)

    def call(self, sid: str) -> FakeCall:
        return self.calls[sid]

    async def ring(self, sid: str, initiated: bool = True) -> httpx.Response | None:
        """The call starts and the callee's phone rings (initiated, then ringing)."""
        call = self.call(sid)
        if call.status == "queued" and initiated:
            await self._status(call, "initiated")
        return await self._status(call, "ringing")

    async def answer(self, sid: str, answered_by: str | None = "human") -> str:
        """The callee picks up: fetch the call's TwiML (returned), report "answered" and, with
        asynchronous AMD, the machine-detection verdict."""
        call = self.call(sid)
        call.status = "in-progress"
        call.answered = time.time()
        detection = bool(call.get("MachineDetection"))
        asynchronous = (call.get("AsyncAmd") or "").lower() == "true"
        params = self.call_params(call, "in-progress")
        if detection and not asynchronous and answered_by:
            params.update(AnsweredBy=answered_by, MachineDetectionDuration="2100")
        url = call.get("Url") or ""
        response = await self.post(url, params)
        assert response.status_code == 200, (
            f"the TwiML request failed: {response.status_code} {response.text}"
        )
        call.twiml = response.text
        await self._status(call, "in-progress")
        amd_url = call.get("AsyncAmdStatusCallback")
        if detection and asynchronous and answered_by and amd_url:
            await self.amd(sid, answered_by)
        return response.text

    async def amd(self, sid: str, answered_by: str) -> httpx.Response:
        """The asynchronous answering-machine verdict (also to repeat it in a test)."""
        call = self.call(sid)
        params = {
            "AccountSid": call.account_sid or self.account_sid,
            "CallSid": sid,
            "AnsweredBy": answered_by,
            "MachineDetectionDuration": "2100",
        }
        return await self.post(call.get("AsyncAmdStatusCallback") or "", params)

    async def busy(self, sid: str) -> httpx.Response | None:
        return await self._finish(self.call(sid), "busy", 0)

    async def no_answer(self, sid: str) -> httpx.Response | None:
        return await self._finish(self.call(sid), "no-answer", 0)

    async def fail(self, sid: str) -> httpx.Response | None:
        return await self._finish(self.call(sid), "failed", 0)

    async def complete(self, sid: str, duration: int | None = None) -> httpx.Response | None:
        """The call ends after a conversation of `duration` seconds (default: since answered)."""
        call = self.call(sid)
        return await self._finish(
            call, "completed", _seconds_since(call.answered) if duration is None else duration
        )


def _first(form: dict[str, list[str]], name: str) -> str | None:
    values = form.get(name)
    return values[0] if values else None


def _seconds_since(moment: float | None) -> int:
    return 0 if moment is None else max(0, round(time.time() - moment))


def _not_found(request: Request) -> JSONResponse:
    return twilio_error(404, 20404, f"The requested resource {request.url.path} was not found")
