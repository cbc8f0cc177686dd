"""What a server is started with (`mt-cli serve` flags), checked before the port opens."""

from __future__ import annotations

from dataclasses import dataclass

from mt_cli.core.config import MAX_BEAM
from mt_cli.core.errors import MtError

WARMUP_LINE = "Warm up ."
MAX_WAIT_MS = 60_000.0  # longer waits would hold every request for minutes; larger numbers overflow timers
ENDPOINTS = "GET / (the web page), POST /translate, GET /health, GET /info, GET /docs"


@dataclass(frozen=True)
class ServeSettings:
    """Where to listen, how to batch, and the limits that keep memory bounded."""

    host: str = "127.0.0.1"
    port: int = 8080
    max_batch_size: int = 32
    max_wait_ms: float = 10.0
    max_lines: int = 256
    max_chars: int = 10000
    max_queue: int = 0  # lines queued or being decoded; 0 = 4 x max(max_lines, max_batch_size)
    max_beam_size: int = 16
    allowed_hosts: tuple[str, ...] = ()  # Host header names; () = localhost and --host; IP literals always
    read_timeout: float = 10.0  # seconds a request body may take to arrive
    header_timeout: float = 10.0  # seconds a connection may take to send a request's headers
    max_connections: int = 64  # open connections; requests on more: 503

    @property
    def queue_lines(self) -> int:
        return self.max_queue or 4 * max(self.max_lines, self.max_batch_size)

    @property
    def max_body(self) -> int:
        """The most bytes a request within --max-chars and --max-lines can take as JSON: 12
        per character (a \\uXXXX\\uXXXX escape), 128 per line (quotes, commas, its prefix's,
        spacing) and 4 KiB for the rest."""
        return 12 * self.max_chars + 128 * self.max_lines + 4096

    def check(self) -> None:
        """One error naming the option, before anything starts."""
        for name in ("max_batch_size", "max_lines", "max_chars", "max_beam_size", "max_connections"):
            if getattr(self, name) < 1:
                raise MtError(f"--{name.replace('_', '-')}: must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.max_wait_ms <= MAX_WAIT_MS:  # False for nan too
            raise MtError(f"--max-wait-ms: must be a number in 0..{MAX_WAIT_MS:g}, got {self.max_wait_ms}")
        for name in ("read_timeout", "header_timeout"):
            if not 0 < getattr(self, name) <= 3600:
                raise MtError(f"--{name.replace('_', '-')}: must be a number of seconds in (0, 3600], "
                              f"got {getattr(self, name)}")
        if self.max_beam_size > MAX_BEAM:
            raise MtError(f"--max-beam-size: must be <= {MAX_BEAM} (the widest beam decoding takes), "
                          f"got {self.max_beam_size}")
        if not 0 <= self.port < 65536:
            raise MtError(f"--port: must be in 0..65535, got {self.port}")
        if self.max_queue and self.max_queue < self.max_lines:
            raise MtError(f"--max-queue: must be >= --max-lines ({self.max_lines}), got {self.max_queue}")
