"""The memory estimate of each command (``footprint.estimate``): linear in the batch, its
largest fitting batch exact, the memory read from the machine or ``ALEXNET_MEMORY_LIMIT``,
a command refused up front when it cannot fit, and a real run within ``MEASURED_FACTOR``
of the estimate."""

from __future__ import annotations

import sys

import pytest

from alexnet_cli.main import main
from footprint import estimate as footprint
from footprint.estimate import (GiB, MiB, Estimate, FootprintError, available_memory,
                              bench_estimate, cgroup_headroom, crosscheck_estimate, format_bytes,
                              inspect_estimate, parse_size, refuse_if_too_big, train_estimate)
from footprint.calibration import measured_peak
from common.variants import get_variant
from crosscheck.parity import PARITY_BATCH
from crosscheck.run import DEFAULT_CHECKS, plan
from tests.conftest import backend_or_skip

THREE = ["pytorch", "mxnet", "tensorflow"]


def estimates() -> dict[str, Estimate]:
    """One estimate of each kind, on a small and a large variant."""
    paper, small = get_variant("paper"), get_variant("cifar-small")
    return {
        "crosscheck-paper": crosscheck_estimate(plan(["paper"], DEFAULT_CHECKS), THREE,
                                                parity_images=PARITY_BATCH),
        "crosscheck-default-sizes": crosscheck_estimate(
            plan(["paper", "cifar-small"], DEFAULT_CHECKS + ("train",), second_sizes=True),
            THREE + ["onnx-pytorch"], parity_images=PARITY_BATCH),
        "inspect": inspect_estimate(small, "pytorch"),
        "bench": bench_estimate(paper, THREE, ("forward", "train"), matmul_size=2048),
        "bench-gpu": bench_estimate(paper, THREE, ("forward",), matmul_size=8192,
                                    activations_on_host=False),
        "train": train_estimate("paper", "pytorch", "cifar10", optimizer="adam"),
    }


@pytest.mark.parametrize("name", list(estimates()))
def test_the_estimate_grows_linearly_in_the_batch(name):
    """Each phase is linear in the batch and the estimate their largest: every image adds
    bytes, never fewer than the one before (a phase with more per image takes over from one
    with more fixed), and far out it is exactly the steepest phase's line."""
    estimate = estimates()[name]
    steps = [estimate.bytes_at(b + 1) - estimate.bytes_at(b) for b in range(1, 300)]
    assert all(0 < a <= b for a, b in zip(steps, steps[1:]))
    slope = max(phase.per_image for phase in estimate.phases)
    far = 10**7 if estimate.cap is None else estimate.cap // 3  # within a training split
    assert estimate.bytes_at(far + 1) - estimate.bytes_at(far) == slope
    assert estimate.bytes_at(2 * far) - estimate.bytes_at(far) == far * slope


def test_a_bigger_variant_costs_more_per_image_and_in_all():
    small, paper = (crosscheck_estimate(plan([name], ("forward",)), ["pytorch"], parity_images=0)
                    for name in ("cifar-small", "paper"))
    assert paper.bytes_at(2) - paper.bytes_at(1) > 10 * (small.bytes_at(2) - small.bytes_at(1))
    assert paper.bytes_at(1) > small.bytes_at(1)
    three = crosscheck_estimate(plan(["paper"], ("forward",)), THREE, parity_images=0)
    assert three.bytes_at(8) > paper.bytes_at(8)  # each framework adds its import and copies


def test_a_training_batch_is_capped_by_the_data_set():
    estimate = train_estimate("cifar-small", "pytorch", "digits", optimizer="sgd", subset=8)
    assert estimate.bytes_at(10**8) == estimate.bytes_at(8) > estimate.bytes_at(7)
    assert estimate.largest_batch(estimate.bytes_at(8)) is None  # any batch fits


@pytest.mark.parametrize("name", list(estimates()))
@pytest.mark.parametrize("limit", [3 * GiB, 20 * GiB, 500 * GiB])
def test_the_largest_batch_fits_and_one_more_does_not(name, limit, monkeypatch):
    estimate = estimates()[name]
    largest = estimate.largest_batch(limit)
    if largest is None:
        assert estimate.bytes_at(10**9) <= limit
        return
    if largest == 0:
        assert estimate.bytes_at(1) > limit
        return
    assert estimate.bytes_at(largest) <= limit < estimate.bytes_at(largest + 1)
    monkeypatch.setenv("ALEXNET_MEMORY_LIMIT", str(limit))
    refuse_if_too_big(estimate, largest, "--batch-size")  # fits: no error
    with pytest.raises(FootprintError, match=f"the largest batch that fits is {largest}$"):
        refuse_if_too_big(estimate, largest + 1, "--batch-size")


def test_not_even_batch_1_fits(monkeypatch):
    monkeypatch.setenv("ALEXNET_MEMORY_LIMIT", "64M")
    estimate = inspect_estimate(get_variant("paper"), "pytorch")
    with pytest.raises(FootprintError, match="not even batch 1 fits: the frameworks and the "
                                             "60,965,224 parameters of paper at 3x227x227 alone"):
        refuse_if_too_big(estimate, 1, "--batch-size 1")


@pytest.mark.parametrize("argv", [
    ["crosscheck", "--variant", "cifar-small", "--framework", "pytorch", "--check", "forward"],
    ["bench", "--framework", "pytorch", "--variant", "cifar-small", "--device", "cpu"],
    ["train", "--framework", "pytorch", "--variant", "cifar-small", "--dataset", "digits",
     "--subset", "8", "--device", "cpu"],
], ids=lambda argv: argv[0])
def test_a_small_limit_refuses_a_normal_command(argv, monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ALEXNET_MEMORY_LIMIT", "100M")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"alexnet {argv[0]}: error: --batch-size"), err
    assert "(estimate), 100.0 MiB is available (ALEXNET_MEMORY_LIMIT=100M)" in err
    assert "not even batch 1 fits" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_a_bad_limit_is_a_clean_error(monkeypatch, capsys):
    monkeypatch.setenv("ALEXNET_MEMORY_LIMIT", "lots")
    assert main(["crosscheck", "--variant", "cifar-small", "--framework", "pytorch"]) == 2
    assert "ALEXNET_MEMORY_LIMIT='lots' is not a memory size" in capsys.readouterr().err


@pytest.mark.parametrize("text, expected", [
    ("4G", 4 * GiB), ("512M", 512 * MiB), ("2.5GiB", int(2.5 * GiB)), ("4gb", 4 * GiB),
    ("1000000", 1000000), (" 3 k ", 3072), ("1T", 1024 * GiB)])
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "abc", "-1G", "0", "4X", "G", "1e9"])
def test_parse_size_refuses(text):
    with pytest.raises(FootprintError, match="is not a memory size"):
        parse_size(text)


def test_format_bytes():
    assert format_bytes(512) == "512 B"
    assert format_bytes(21.3 * GiB) == "21.3 GiB"
    assert format_bytes(1.2 * 1024 ** 5) == "1.2 PiB"
    assert format_bytes(3000 * 1024 ** 5) == "3,000.0 PiB"


def test_the_override_wins_and_the_machine_is_read(monkeypatch):
    monkeypatch.setenv("ALEXNET_MEMORY_LIMIT", "4G")
    assert available_memory() == (4 * GiB, "ALEXNET_MEMORY_LIMIT=4G")
    monkeypatch.delenv("ALEXNET_MEMORY_LIMIT")
    if sys.platform.startswith("linux"):
        found = available_memory()
        assert found is not None and found[0] > 0


def test_the_smaller_of_meminfo_and_the_cgroup(tmp_path, monkeypatch):
    monkeypatch.delenv("ALEXNET_MEMORY_LIMIT", raising=False)
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24684096 kB\nMemAvailable:    2097152 kB\n")
    monkeypatch.setattr(footprint, "cgroup_headroom", lambda: None)
    assert available_memory(meminfo) == (2 * GiB, "MemAvailable")
    monkeypatch.setattr(footprint, "cgroup_headroom", lambda: GiB)
    assert available_memory(meminfo) == (GiB, "under the cgroup's memory limit")


def test_cgroup_v2_and_v1(tmp_path):
    v2 = tmp_path / "v2"
    (v2 / "job").mkdir(parents=True)
    (v2 / "job" / "memory.max").write_text(f"{4 * GiB}\n")
    (v2 / "job" / "memory.current").write_text(f"{3 * GiB}\n")
    (v2 / "job" / "memory.stat").write_text(f"anon 1\ninactive_file {GiB}\n")
    self_v2 = tmp_path / "self_v2"
    self_v2.write_text("0::/job\n")
    assert cgroup_headroom(v2, self_v2) == 2 * GiB  # 4 - (3 - 1 reclaimable)
    (v2 / "job" / "memory.max").write_text("max\n")
    assert cgroup_headroom(v2, self_v2) is None

    v1 = tmp_path / "v1"
    (v1 / "memory").mkdir(parents=True)
    (v1 / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712\n")  # no limit
    self_v1 = tmp_path / "self_v1"
    self_v1.write_text("4:memory:/process_api/abc\n1:cpu:/\n0::/\n")
    assert cgroup_headroom(v1, self_v1) is None
    (v1 / "memory" / "memory.limit_in_bytes").write_text(f"{8 * GiB}\n")
    (v1 / "memory" / "memory.usage_in_bytes").write_text(f"{GiB}\n")
    assert cgroup_headroom(v1, self_v1) == 7 * GiB


def test_the_estimate_is_near_a_measured_peak():
    """A real crosscheck (cifar-small, PyTorch, forward; ~5 s) against its estimate."""
    backend_or_skip("pytorch")
    batch = 8
    code, peak = measured_peak([sys.executable, "-m", "alexnet_cli.main", "crosscheck",
                                "--variant", "cifar-small", "--framework", "pytorch", "--check",
                                "forward", "--native-only", "--device", "cpu", "--quiet",
                                "--batch-size", str(batch)])
    assert code == 0
    estimate = crosscheck_estimate(plan(["cifar-small"], ("forward",)), ["pytorch"],
                                   parity_images=PARITY_BATCH).bytes_at(batch)
    factor = footprint.MEASURED_FACTOR
    assert peak / factor <= estimate <= peak * factor, (
        f"estimate {format_bytes(estimate)}, measured {format_bytes(peak)}")
