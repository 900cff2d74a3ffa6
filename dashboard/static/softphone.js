/* softphone: see docs/voice-desk.md */
