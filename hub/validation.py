"""One readable line for a pydantic validation error, for API answers and flow editors."""

from __future__ import annotations

from pydantic import ValidationError


def validation_problems(exc: ValidationError, limit: int = 5) -> str:
    """`field.path: message; ...` for the first `limit` problems (`body` for the whole input)."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
        for e in exc.errors(include_url=False)[:limit]
    )
