"""Pinning glibc's mmap threshold returns freed tensors' memory to the system at once; the score stage pins it only
when RAM is tight, and says so in its manifest."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

import esa.engine.host_memory as host_memory
import esa.engine.scoring.memory_check as memory_check

# 100 blocks of 1 MiB, all freed but the last (which keeps the heap's top in use, so glibc cannot trim below it).
HELD_AFTER_FREE = textwrap.dedent("""\
    import json, sys, psutil, torch
    from esa.engine.host_memory import return_freed_blocks
    pinned = sys.argv[1] == "pinned" and return_freed_blocks()
    big = torch.ones(1 << 20)
    del big  # a 4 MiB block freed: glibc's own rule now serves smaller ones from the heap
    before = psutil.Process().memory_info().rss
    blocks = [torch.ones(1 << 18) for _ in range(100)]
    del blocks[:-1]
    print(json.dumps({"pinned": pinned, "held_mib": (psutil.Process().memory_info().rss - before) / 2**20}))
    """)


def held(mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", HELD_AFTER_FREE, mode], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_pinned_threshold_gives_freed_blocks_back():
    default, pinned = held("default"), held("pinned")
    if not pinned["pinned"]:
        pytest.skip("the C library has no mallopt (not glibc)")
    assert default["held_mib"] > 60  # the freed 99 MiB stay in the heap
    assert pinned["held_mib"] < 10  # only the block still in use


def test_the_stage_pins_only_when_ram_is_tight(run_score, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(host_memory, "return_freed_blocks", lambda: calls.append(1) or True)
    code, out, _ = run_score("roomy")
    assert code == 0 and not calls
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["host_allocator"] == "default"
    estimate = manifest["memory_estimate"]
    to_allocate = (estimate["total_gib"] - estimate["parts_gib"]["weights"]) * 2**30
    monkeypatch.setattr(memory_check, "available_ram", lambda: int(1.5 * to_allocate))  # fits, but not twice
    code, out, _ = run_score("tight")
    assert code == 0 and calls == [1]
    assert json.loads((out / "manifest.json").read_text())["host_allocator"].startswith("freed blocks returned")
    assert "host memory is tight" in capsys.readouterr().out
