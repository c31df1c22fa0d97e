"""The run's neural cipher is trained once per settings and seed, then loaded."""

import numpy as np

from iomt.fedlearn import neural_cipher as nc
from iomt.scenarios.in_process import training_pool
from iomt.scenarios.schema import validate_scenario
from iomt.scenarios.setups import cipher_file, ciphers_missing, enrol_ahead, make_cipher


def scenario(tmp_path, seed=1, epochs=2):
    return validate_scenario({
        "name": "c", "seed": seed, "traffic": {"cache_dir": str(tmp_path)},
        "update_encryption": {"kind": "neural",
                              "neural": {"train_blocks": 200, "max_epochs": epochs}},
    })  # fmt: skip


def test_a_cipher_is_kept_and_loaded_by_its_settings_and_seed(tmp_path):
    first = make_cipher(scenario(tmp_path))
    (saved,) = (tmp_path / "ciphers").iterdir()
    stamp = saved.stat().st_mtime_ns
    again = make_cipher(scenario(tmp_path))
    assert saved.stat().st_mtime_ns == stamp  # loaded, not trained again
    blocks = nc.random_blocks(5, np.random.default_rng(0))
    np.testing.assert_array_equal(first.nets.encode(blocks), again.nets.encode(blocks))
    assert again.training.reconstruction == first.training.reconstruction
    make_cipher(scenario(tmp_path, seed=2))
    make_cipher(scenario(tmp_path, epochs=3))
    assert len(list((tmp_path / "ciphers").iterdir())) == 3
    assert make_cipher(validate_scenario({"name": "plain"})) is None


def test_how_the_server_reads_a_cipher_does_not_train_another():
    def keyed(unbiased: bool):
        return validate_scenario({
            "name": "k", "qkd": {"enabled": True},
            "update_encryption": {"kind": "neural",
                                  "neural": {"keyed": True, "unbiased": unbiased}},
        })  # fmt: skip

    assert cipher_file(keyed(True)) == cipher_file(keyed(False))
    assert cipher_file(keyed(True)) != cipher_file(validate_scenario({
        "name": "k", "update_encryption": {"kind": "neural"}}))  # fmt: skip


def test_a_sweeps_missing_ciphers_are_trained_ahead_in_worker_processes(tmp_path):
    points = [scenario(tmp_path), scenario(tmp_path), scenario(tmp_path, seed=2),
              validate_scenario({"name": "plain"})]  # fmt: skip
    missing = ciphers_missing(points)
    assert [s.seed for s in missing] == [1, 2]  # one per cipher; none for a plaintext run
    pool = training_pool(2)
    try:
        enrol_ahead(missing, pool)
    finally:
        pool.shutdown()
    assert ciphers_missing(points) == []
    assert len(list((tmp_path / "ciphers").iterdir())) == 2
    # what a worker trained is what the launcher would have trained, bit for bit: both
    # train on one thread
    loaded = make_cipher(scenario(tmp_path))
    (tmp_path / "fresh").mkdir()
    trained_here = make_cipher(scenario(tmp_path / "fresh"))
    blocks = nc.random_blocks(5, np.random.default_rng(0))
    np.testing.assert_array_equal(loaded.nets.encode(blocks), trained_here.nets.encode(blocks))
