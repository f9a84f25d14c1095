"""One seed derivation for plans and translate/paraphrase requests."""

from __future__ import annotations

import hashlib

import pytest

from textsynth.seeds import derive_seed


def test_seeds_are_what_earlier_versions_derived() -> None:
    # pinned: a changed value would change every stored request key and dataset
    assert derive_seed(0, "turn_on", "en", 0) == 550761255978280963
    assert derive_seed(0, "translate", "row 0", "de", 0, bits=31) == 681869826


@pytest.mark.parametrize("bits", [1, 7, 8, 31, 63, 64, 200])
def test_seeds_fit_their_bits_and_take_the_top_bits_of_the_digest(bits: int) -> None:
    for i in range(200):
        seed = derive_seed("run", i, bits=bits)
        assert 0 <= seed < 2 ** bits
        digest = int.from_bytes(hashlib.sha256(f"run\x1f{i}".encode()).digest(), "big")
        assert seed == digest >> (256 - bits)


def test_parts_are_separated_so_they_cannot_run_together() -> None:
    assert derive_seed("ab", "c") != derive_seed("a", "bc")
    with pytest.raises(ValueError, match="bits"):
        derive_seed(1, bits=0)
