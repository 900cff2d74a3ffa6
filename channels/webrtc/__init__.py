"""WebRTC click-to-call from the web-chat widget (pipecat SmallWebRTC over aiortc)."""
