"""The hardware-aware runtime: precision chosen from CPU flags and GPUs (an explicit value
winning), the allocator and thread variables set before TensorFlow starts (the user's own
winning), and RUN/runtime.json naming the machine of a real training run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import tiny_config_text

from mt_cli.core.errors import ConfigError
from mt_cli.core.hardware import Cpu, Gpu, cpu_from_cpuinfo, override_flags, parse_compute_capability, this_cpu
from mt_cli.core.runtime import (
    allocator_name,
    configure_environment,
    machine_record,
    plan_threads,
    resolve_decode_dtype,
    resolve_precision,
)

ZEN3_CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 1
model name\t: AMD EPYC 7B13
flags\t\t: fpu sse sse2 avx f16c fma avx2 bmi2 sha_ni vaes

processor\t: 1
model name\t: AMD EPYC 7B13
flags\t\t: fpu avx512_bf16 amx_bf16
"""
ARM_CPUINFO = """processor\t: 0
BogoMIPS\t: 243.75
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid bf16 sve
CPU implementer\t: 0x41
"""


def cpu(*flags: str) -> Cpu:
    return Cpu("test CPU", "x86_64", 2, frozenset(flags))


def test_cpuinfo_is_read_from_the_first_processor_block() -> None:
    zen3 = cpu_from_cpuinfo(ZEN3_CPUINFO, 2, "x86_64")
    assert (zen3.model, zen3.family, zen3.model_number) == ("AMD EPYC 7B13", "25", "1")
    assert zen3.relevant_flags()["avx2"] and not zen3.relevant_flags()["avx512f"]
    assert zen3.bf16_units == []  # the second block's flags are not this CPU's first core's
    arm = cpu_from_cpuinfo(ARM_CPUINFO, 4, "aarch64")
    assert {"asimd", "bf16", "sve"} <= arm.flags and arm.cores == 4


@pytest.mark.parametrize(
    "flags, expected, reason",
    [
        (("avx2", "fma"), "float32", "auto: this CPU has no bf16 units"),
        (
            ("avx2", "avx512f", "avx512_bf16"),
            "bfloat16",
            "auto: this CPU has bf16 units (avx512_bf16)",
        ),
        (
            ("avx512_bf16", "amx_bf16", "amx_tile"),
            "bfloat16",
            "auto: this CPU has bf16 units (amx_bf16, avx512_bf16)",
        ),
        (("avx512f",), "float32", "auto: this CPU has no bf16 units"),
    ],
)
def test_auto_precision_follows_the_cpu_flags(
    flags: tuple[str, ...], expected: str, reason: str
) -> None:
    train, decode = (
        resolve_precision("auto", cpu(*flags)),
        resolve_decode_dtype("auto", cpu(*flags)),
    )
    assert train.value == expected
    assert train.reason.startswith(reason)
    assert train.describe("precision").startswith(f"precision: {expected} (auto: ")
    # Decoding keeps float32 whatever the units: bfloat16 makes a line depend on its batch.
    assert decode.value == "float32"
    assert "independent of the lines batched with it" in decode.reason
    assert ("bf16 units (" in decode.reason) == (expected == "bfloat16")


@pytest.mark.parametrize(
    "capability, train, decode",
    [
        ((9, 0), "bfloat16", "float32"),
        ((8, 0), "bfloat16", "float32"),
        ((8, 6), "bfloat16", "float32"),
        ((7, 5), "float16", "float32"),
        ((7, 0), "float16", "float32"),
        ((6, 1), "float32", "float32"),
    ],
)
def test_auto_precision_on_gpus_follows_compute_capability(
    capability: tuple[int, int], train: str, decode: str
) -> None:
    gpus = [Gpu("GPU:0", capability)]
    assert resolve_precision("auto", cpu("amx_bf16"), gpus).value == train  # the GPU decides
    assert resolve_decode_dtype("auto", cpu("amx_bf16"), gpus).value == decode
    assert f"{capability[0]}.{capability[1]}" in resolve_precision("auto", cpu(), gpus).reason


def test_mixed_gpus_take_what_all_of_them_have() -> None:
    gpus = [Gpu("A100", (8, 0)), Gpu("T4", (7, 5))]
    assert resolve_precision("auto", cpu(), gpus).value == "float16"


@pytest.mark.parametrize("explicit", ["float32", "bfloat16", "float16"])
def test_an_explicit_precision_wins(explicit: str) -> None:
    for machine, gpus in ((cpu("avx2"), []), (cpu("amx_bf16"), [Gpu("A100", (8, 0))])):
        choice = resolve_precision(explicit, machine, gpus)
        assert (choice.value, choice.reason) == (explicit, "set in the config")
        if explicit != "float16":
            decode = resolve_decode_dtype(explicit, machine, gpus)
            assert decode.value == explicit and decode.reason.startswith("set in the config")
    assert "may depend on the lines batched" in resolve_decode_dtype("bfloat16", cpu("avx2")).reason


@pytest.mark.parametrize(
    "text, expected",
    [
        ("avx2,fma", {"avx2", "fma"}),  # names replace what was detected
        ("avx2 avx512_bf16", {"avx2", "avx512_bf16"}),
        ("+amx_bf16,-avx512_bf16", {"avx2", "amx_bf16"}),  # +/- edit it
        ("-avx512_bf16", {"avx2"}),
        ("", set()),
    ],
)
def test_cpu_flags_can_be_set_as_another_cpu_has_them(text: str, expected: set[str]) -> None:
    assert override_flags(frozenset({"avx2", "avx512_bf16"}), text) == expected


def test_a_malformed_cpu_flags_override_is_one_error_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"^MT_CLI_CPU_FLAGS: 'avx2;rm' is not a CPU flag name"):
        override_flags(frozenset(), "fma,avx2;rm")


@pytest.mark.parametrize("flags, expected", [("avx2,fma", "float32"), ("+avx512_bf16", "bfloat16")])
def test_auto_decisions_follow_the_override(monkeypatch: pytest.MonkeyPatch, flags: str, expected: str) -> None:
    monkeypatch.setenv("MT_CLI_CPU_FLAGS", flags)
    this_cpu.cache_clear()
    try:
        machine = this_cpu()
        choice = resolve_precision("auto", machine)
        assert machine.flags_set_by == "MT_CLI_CPU_FLAGS" and choice.value == expected
        assert "as MT_CLI_CPU_FLAGS sets its flags" in choice.reason
        assert machine_record(probe=False)["cpu"]["flags_set_by"] == "MT_CLI_CPU_FLAGS"
    finally:
        this_cpu.cache_clear()


def test_compute_capability_is_parsed_from_tensorflow_and_nvidia_smi_forms() -> None:
    assert parse_compute_capability((8, 6)) == (8, 6)
    assert parse_compute_capability("7.5") == (7, 5)
    assert parse_compute_capability(None) == (0, 0) == parse_compute_capability("n/a")


def test_environment_is_set_before_tensorflow_and_the_users_values_win() -> None:
    env: dict[str, str] = {}
    effective = configure_environment(env)
    assert env == {"TF_CPU_ALLOCATOR_USE_BFC": "true"} and allocator_name(env) == "bfc"
    assert effective["TF_CPU_ALLOCATOR_USE_BFC"] == "true (mt-cli)"
    mine = {"TF_CPU_ALLOCATOR_USE_BFC": "false"}
    assert configure_environment(mine)["TF_CPU_ALLOCATOR_USE_BFC"] == "false (user)"
    assert mine == {"TF_CPU_ALLOCATOR_USE_BFC": "false"} and allocator_name(mine) == "default"


def test_threads_are_tensorflows_default_unless_the_user_sets_them() -> None:
    assert (plan_threads(2).intra_op, plan_threads(2).inter_op) == (2, 2)
    assert (plan_threads(16).intra_op, plan_threads(0).inter_op) == (16, 1)
    record = machine_record(environ={"TF_NUM_INTEROP_THREADS": "1"})
    assert record["threads"]["inter_op"] == 1 and record["threads"]["set_by"] == "user"
    assert record["threads"]["intra_op"] == this_cpu().cores
    assert machine_record(environ={"TF_NUM_INTRAOP_THREADS": "x"})["threads"]["intra_op"] == "x"


def test_machine_record_names_the_cpu_and_threads() -> None:
    record = machine_record(resolve_precision("auto", this_cpu()))
    assert record["cpu"]["cores"] == this_cpu().cores >= 1
    assert set(record["cpu"]["flags"]) >= {"avx2", "avx512f", "avx512_bf16", "amx_bf16"}
    assert record["precision"]["value"] in ("float32", "bfloat16")
    assert record["versions"]["tensorflow"]
    json.dumps(record)  # plain JSON


def _train(tmp_path: Path, toy_dir: Path, precision: str, **env: str) -> tuple[str, Path]:
    """A real two-step `mt-cli train` in a child process whose environment has no TensorFlow
    runtime variables but `env`; returns its stderr and run directory."""
    config = tmp_path / f"{precision}.yaml"
    config.write_text(
        tiny_config_text(toy_dir, train={"max_steps": 2, "precision": precision, "log_every": 1})
    )
    run = tmp_path / f"run-{precision}"
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("TF_CPU_ALLOCATOR", "TF_NUM_", "MT_CLI_CPU_FLAGS"))
    }
    done = subprocess.run(
        [sys.executable, "-m", "mt_cli", "train", str(config), "--run-dir", str(run)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**clean, **env},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stderr, run


def _train_in_process(tmp_path: Path, toy_dir: Path, monkeypatch: pytest.MonkeyPatch,
                      **env: str) -> tuple[str, Path]:
    """The same two-step `mt-cli train` through the CLI in this process, with no TensorFlow
    runtime variable of the suite's but the allocator's (set as every mt-cli command sets it)
    and `env`. What a CPU's flags decide needs no fresh TensorFlow; the allocator and thread
    variables do (a real process covers those)."""
    from typer.testing import CliRunner

    from mt_cli.cli.main import app

    config = tmp_path / "auto.yaml"
    config.write_text(tiny_config_text(toy_dir, train={"max_steps": 2, "precision": "auto", "log_every": 1}))
    run = tmp_path / "run-auto"
    for name in [k for k in os.environ if k.startswith(("TF_NUM_", "MT_CLI_CPU_FLAGS"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("TF_CPU_ALLOCATOR_USE_BFC", "true")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    this_cpu.cache_clear()
    try:
        result = CliRunner().invoke(app, ["train", str(config), "--run-dir", str(run)])
    finally:
        this_cpu.cache_clear()
    assert result.exit_code == 0, result.output[-3000:]
    return result.stderr, run


# The CPU as detected in a real child process (the allocator set before TensorFlow starts); the
# decisions of CPUs with and without bf16 units in this process (MT_CLI_CPU_FLAGS).
@pytest.mark.parametrize("flags, in_process",
                         [(None, False), ("avx2,fma", True), ("avx2,fma,avx512f,avx512_bf16", True)],
                         ids=["detected", "as-avx2-only", "as-avx512-bf16"])
def test_train_says_its_precision_first_and_writes_runtime_json(
    tmp_path: Path, toy_dir: Path, flags: str | None, in_process: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The auto choice in a real run, on this CPU and as CPUs with and without bf16 units decide."""
    env = {} if flags is None else {"MT_CLI_CPU_FLAGS": flags}
    if in_process:
        stderr, run = _train_in_process(tmp_path, toy_dir, monkeypatch, **env)
    else:
        stderr, run = _train(tmp_path, toy_dir, "auto", **env)
    monkeypatch.delenv("MT_CLI_CPU_FLAGS", raising=False)  # the run saw only `env`, not the suite's own setting
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    this_cpu.cache_clear()
    cpu = this_cpu()
    expected = resolve_precision("auto", cpu)  # no GPU is visible to the tests
    this_cpu.cache_clear()  # nothing looked up under this test's flags outlives it
    if flags is not None:
        assert expected.value == ("bfloat16" if "bf16" in flags else "float32")
    lines = stderr.splitlines()
    assert lines[0].startswith("training the SentencePiece model")  # then, before any data or step:
    assert lines[1] == expected.describe("precision")
    assert lines[2].startswith(f"runtime: {cpu.model}")
    record = json.loads((run / "runtime.json").read_text())
    assert record["precision"] == {"value": expected.value, "reason": expected.reason}
    assert record["allocator"] == "bfc" and record["cpu"]["model"] == cpu.model
    assert record["threads"]["intra_op"] == plan_threads(cpu.cores).intra_op
    manifest = json.loads((run / "export" / "manifest.json").read_text())
    assert manifest["trained_precision"] == expected.value
    assert "precision: auto" in (run / "config.yaml").read_text()  # a resume decides on its machine


def test_explicit_precision_allocator_and_threads_win_in_a_real_run(
    tmp_path: Path, toy_dir: Path
) -> None:
    stderr, run = _train(
        tmp_path, toy_dir, "bfloat16", TF_CPU_ALLOCATOR_USE_BFC="false", TF_NUM_INTEROP_THREADS="1"
    )
    assert stderr.splitlines()[1] == "precision: bfloat16 (set in the config)"
    record = json.loads((run / "runtime.json").read_text())
    assert record["precision"]["value"] == "bfloat16"
    assert record["allocator"] == "default" and record["threads"]["inter_op"] == 1
    assert record["threads"]["set_by"] == "user"


def test_onednn_is_read_from_its_cache_and_an_unprobeable_runtime_is_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mt_cli.core import runtime

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(runtime.sys, "executable", str(tmp_path / "no-python"))  # probe fails
    assert runtime.onednn_info() == {}
    assert not (tmp_path / "mt-cli").exists()  # a failed probe caches nothing
    record = runtime.machine_record(environ={})
    assert record["versions"]["onednn"] is None and record["onednn_isa"] is None
    cache = tmp_path / "mt-cli"
    found = {"version": "9.9.9", "isa": "Test ISA"}
    monkeypatch.setattr(runtime, "_probe_onednn", lambda: found)
    assert runtime.onednn_info() == found  # probed once, then cached
    monkeypatch.setattr(runtime, "_probe_onednn", dict)
    assert runtime.onednn_info() == found  # read back from the cache
    (next(cache.glob("onednn-*.json"))).write_text("{not json")
    assert runtime.onednn_info() == {}  # a corrupt cache is probed again, not trusted


def test_averaged_models_record_the_precision_the_run_resolved(tmp_path: Path) -> None:
    from mt_cli.app.average import trained_precision

    assert trained_precision(tmp_path, "auto") == "auto"  # no runtime.json (an older run)
    (tmp_path / "runtime.json").write_text("{broken")
    assert trained_precision(tmp_path, "auto") == "auto"
    (tmp_path / "runtime.json").write_text(json.dumps({"precision": {"value": "bfloat16"}}))
    assert trained_precision(tmp_path, "auto") == "bfloat16"
