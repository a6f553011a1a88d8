"""``bulk_build`` pauses the cycle collector for a block and leaves it as it found it, whatever happens inside."""

from __future__ import annotations

import gc

import pytest

from components.core.bulk import bulk_build


def test_the_collector_is_paused_inside_and_restored_after_an_error_and_when_nested() -> None:
    assert gc.isenabled()
    with bulk_build():
        assert not gc.isenabled()
        with bulk_build():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the inner block found it off: still off for the outer one
    assert gc.isenabled()
    with pytest.raises(RuntimeError), bulk_build():
        raise RuntimeError("a reader failed")
    assert gc.isenabled()


def test_a_collector_someone_else_turned_off_stays_off() -> None:
    gc.disable()
    try:
        with bulk_build():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_ingest_and_manifest_load_leave_the_collector_on(tmp_path) -> None:
    from components.core.manifest import Manifest
    from components.core.spec import DataSpec
    from components.ingest.core import read_source
    from components.synth.core import SynthConfig, generate

    made = generate(SynthConfig(num_images=6, seed=0, image_size=(64, 64)), tmp_path / "synth")
    result = read_source(DataSpec(source=str(made.annotations)), "detection")
    assert gc.isenabled() and len(result.manifest) > 0
    loaded = Manifest.load(result.manifest.save(tmp_path / "manifest.json"))
    assert gc.isenabled() and len(loaded) == len(result.manifest)
