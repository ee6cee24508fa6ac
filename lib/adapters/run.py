"""Running an outside tool: argv only (never a shell), a timeout, one error type."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

from vmbundle.errors import ToolError, ToolMissing


def run_tool(
    argv: Sequence[str],
    *,
    timeout: float = 60.0,
    input_text: str | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run argv, capture text output; raise ToolError on failure when check is set."""
    try:
        proc = subprocess.run(
            list(argv),
            input=input_text,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=None if input_text is not None else subprocess.DEVNULL,
        )
    except FileNotFoundError as exc:
        raise ToolMissing(argv, None, f"command not found: {argv[0]}") from exc
    except subprocess.TimeoutExpired as exc:
        raise ToolError(argv, None, f"timed out after {timeout:g}s") from exc
    if check and proc.returncode != 0:
        raise ToolError(argv, proc.returncode, proc.stderr or proc.stdout)
    return proc
