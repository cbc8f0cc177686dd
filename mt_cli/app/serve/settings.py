"""What a server is started with (`mt-cli serve` flags), checked before the port opens."""

from __future__ import annotations

from dataclasses import dataclass

from mt_cli.core.config import MAX_BEAM, rule_field
from mt_cli.core.config_checks import check_fields
from mt_cli.core.errors import ConfigError

WARMUP_LINE = "Warm up ."
MAX_WAIT_MS = 60_000.0  # longer waits would hold every request for minutes; larger numbers overflow timers
ENDPOINTS = ("GET / (the web page), POST /translate, GET /health, GET /info, GET /docs; LibreTranslate's "
             "POST /translate (with q), GET /languages, POST /detect")


def flag(name: str) -> str:
    """The `mt-cli serve` flag of a ServeSettings field: --name-with-dashes."""
    return "--" + name.replace("_", "-")


SECONDS = "a number of seconds in (0, 3600]"


@dataclass(frozen=True)
class ServeSettings:
    """Where to listen, how to batch, and the limits that keep memory bounded: each field with
    its default, rule and doc, from which `mt-cli serve` makes its flags (one per field) and
    `check` its errors, by the config's own rules (core/config_checks.py)."""

    host: str = rule_field("127.0.0.1", doc="Address to listen on (0.0.0.0 = every interface).")
    port: int = rule_field(8080, ge=0, le=65535, says="in 0..65535", doc="TCP port.")
    max_batch_size: int = rule_field(32, ge=1, doc="Most lines decoded together (1 = no micro-batching).")
    max_wait_ms: float = rule_field(10.0, ge=0, le=MAX_WAIT_MS, says=f"a number in 0..{MAX_WAIT_MS:g}",
                                    doc="How long the oldest queued request waits for others to batch with.")
    max_lines: int = rule_field(256, ge=1, doc="Most lines per request (more: 413).")
    max_chars: int = rule_field(
        10000, ge=1, doc="Most characters per request, text and prefixes (more: 413); bodies over "
        "12 x --max-chars + 128 x --max-lines + 4096 bytes are refused before they are read.")
    max_queue: int = rule_field(  # 0 = 4 x max(max_lines, max_batch_size)
        0, ge=0, doc="Most lines queued or decoding (more: 503 + Retry-After); 0 = 4 x --max-lines.")
    max_beam_size: int = rule_field(16, ge=1, le=MAX_BEAM, doc="Largest beam_size a request may ask for.")
    allowed_hosts: tuple[str, ...] = rule_field(  # () = localhost and --host; IP literals always pass
        (), doc="Comma-separated Host header names to answer (against DNS rebinding; others: 400); '*' = any. "
        "IP addresses always pass. Default: localhost and --host (with 0.0.0.0 or ::, this machine's name too).")
    read_timeout: float = rule_field(10.0, gt=0, le=3600, says=SECONDS,
                                     doc="Seconds a request body may take to arrive (slower: 408).")
    header_timeout: float = rule_field(
        10.0, gt=0, le=3600, says=SECONDS, doc="Seconds a connection may take to send a request's headers, counted "
        "from its opening or its previous answer (slower: closed, with a 408 if part of a request came).")
    max_connections: int = rule_field(64, ge=1,
                                      doc="Most open connections (requests beyond: 503 + Retry-After).")

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
        """One error naming the option, before anything starts: each field by its rules, then
        the rule across fields."""
        check_fields(self, flag)
        if self.max_queue and self.max_queue < self.max_lines:
            raise ConfigError(f"--max-queue: must be >= --max-lines ({self.max_lines}), got {self.max_queue}",
                              "--max-queue")
