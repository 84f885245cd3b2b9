"""CIFAR readers: official folder, archive, download, npz; and the errors a user can cause."""

from __future__ import annotations

import dataclasses
import os
import shutil

import numpy as np
import pytest

from cifar_fixture import write_mini_cifar
from tailsam.cli import main
from tailsam.data import CIFAR10, load_cifar, load_dataset, read_cifar_npz
from tailsam.errors import DataError


def assert_matches(data, mini):
    np.testing.assert_array_equal(data.x_train, mini.x_train)
    np.testing.assert_array_equal(data.y_train, mini.y_train)
    np.testing.assert_array_equal(data.x_test, mini.x_test)
    np.testing.assert_array_equal(data.y_test, mini.y_test)
    assert data.class_names == tuple(f"class{i}" for i in range(mini.spec.num_classes))
    if mini.coarse_train is not None:
        np.testing.assert_array_equal(data.y_train_coarse, mini.coarse_train)


def test_reads_the_extracted_folder(mini_cifar):
    assert_matches(load_cifar(mini_cifar.spec, mini_cifar.root, download=False), mini_cifar)


def test_reads_the_archive_in_place(mini_cifar):
    shutil.rmtree(mini_cifar.root / mini_cifar.spec.folder)
    assert_matches(load_cifar(mini_cifar.spec, mini_cifar.root, download=False), mini_cifar)


def test_downloads_the_archive_when_absent(mini_cifar, tmp_path_factory):
    # The spec's URL is a file:// URL of the fixture archive: the real download code path.
    empty_root = tmp_path_factory.mktemp("download")
    data = load_cifar(mini_cifar.spec, empty_root, download=True)
    assert_matches(data, mini_cifar)
    assert (empty_root / mini_cifar.spec.archive).is_file()
    assert not list(empty_root.glob("*.part"))


def test_failed_download_names_files_folder_and_url(tmp_path):
    spec = dataclasses.replace(CIFAR10, url=(tmp_path / "absent.tar.gz").as_uri())
    root = tmp_path / "root"
    with pytest.raises(DataError) as err:
        load_cifar(spec, root, download=True)
    message = str(err.value)
    for expected in ("cifar10.npz", "cifar-10-batches-py", "cifar-10-python.tar.gz", spec.url, str(root)):
        assert expected in message
    assert not root.exists(), "a failed download must not leave folders behind"


def test_md5_mismatch_is_a_clear_error(mini_cifar):
    batch = mini_cifar.root / mini_cifar.spec.folder / mini_cifar.spec.train_files[0]
    data = bytearray(batch.read_bytes())
    data[-10] ^= 0xFF
    batch.write_bytes(bytes(data))
    with pytest.raises(DataError, match="md5 .* does not match"):
        load_cifar(mini_cifar.spec, mini_cifar.root, download=False)


def test_corrupt_archive_is_a_clear_error(mini_cifar):
    shutil.rmtree(mini_cifar.root / mini_cifar.spec.folder)
    archive = mini_cifar.root / mini_cifar.spec.archive
    archive.write_bytes(archive.read_bytes()[:-20])
    with pytest.raises(DataError, match="md5"):
        load_cifar(mini_cifar.spec, mini_cifar.root, download=False)


def test_missing_file_in_folder_is_named(mini_cifar):
    missing = mini_cifar.root / mini_cifar.spec.folder / mini_cifar.spec.test_files[0]
    missing.unlink()
    with pytest.raises(DataError, match=str(missing)):
        load_cifar(mini_cifar.spec, mini_cifar.root, download=False)


def test_pickles_with_code_are_refused(tmp_path):
    # Even with a matching md5 (a hand-made spec), only arrays and containers unpickle.
    import hashlib
    import pickle

    folder = tmp_path / CIFAR10.folder
    folder.mkdir()
    evil = pickle.dumps(os.system)  # a reference to a callable
    (folder / "data_batch_1").write_bytes(evil)
    spec = dataclasses.replace(CIFAR10, md5={**CIFAR10.md5, "data_batch_1": hashlib.md5(evil).hexdigest()})
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        load_cifar(spec, tmp_path, download=False)


def write_npz(path, mini, **overrides):
    arrays = dict(x_train=mini.x_train, y_train=mini.y_train, x_test=mini.x_test, y_test=mini.y_test)
    arrays.update(overrides)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})


def test_npz_round_trip_and_preferred_over_official_files(mini_cifar):
    write_npz(mini_cifar.root / mini_cifar.spec.npz_name, mini_cifar)
    # Break the official files: the npz is read first, so they are never touched.
    shutil.rmtree(mini_cifar.root / mini_cifar.spec.folder)
    data = read_cifar_npz(mini_cifar.root / mini_cifar.spec.npz_name, mini_cifar.spec)
    np.testing.assert_array_equal(data.x_train, mini_cifar.x_train)
    np.testing.assert_array_equal(load_cifar(mini_cifar.spec, mini_cifar.root).y_test, mini_cifar.y_test)


@pytest.mark.parametrize("field, break_array, message", [
    ("y_test", lambda a: None, "missing array"),
    ("x_train", lambda a: a.astype(np.float32), "uint8"),
    ("x_train", lambda a: a[:, :16], r"\[32, 32, 3\]"),
    ("y_train", lambda a: a[:-1], "one per image"),
    ("y_train", lambda a: a + 100, "labels must lie in"),
])
def test_malformed_npz_is_a_clear_error(mini_cifar, field, break_array, message):
    path = mini_cifar.root / "bad.npz"
    write_npz(path, mini_cifar, **{field: break_array(getattr(mini_cifar, field))})
    with pytest.raises(DataError, match=message):
        read_cifar_npz(path, mini_cifar.spec)


def test_unreadable_npz_is_a_clear_error(tmp_path):
    path = tmp_path / "cifar10.npz"
    path.write_bytes(b"not a zip file")
    with pytest.raises(DataError, match="not a readable .npz"):
        read_cifar_npz(path, CIFAR10)


# The command turns each of these into exit status 2 and one line on stderr.

def run_cli(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_md5_mismatch_exits_2(tmp_path, capsys):
    # The fixture's files carry the official names but not the official bytes.
    write_mini_cifar(tmp_path, CIFAR10)
    code, _, err = run_cli(capsys, "data", "--dataset", "cifar10", "--root", str(tmp_path), "--no-download")
    assert code == 2
    assert err.count("\n") == 1 and "md5" in err and "Traceback" not in err


def test_cli_missing_data_exits_2(tmp_path, capsys):
    code, _, err = run_cli(capsys, "data", "--dataset", "cifar100", "--root", str(tmp_path), "--no-download")
    assert code == 2
    assert err.count("\n") == 1 and "cifar-100-python.tar.gz" in err


def test_cli_malformed_npz_exits_2(tmp_path, capsys):
    np.savez(tmp_path / "cifar10.npz", x_train=np.zeros((2, 32, 32, 3), np.uint8))
    code, _, err = run_cli(capsys, "data", "--dataset", "cifar10", "--root", str(tmp_path))
    assert code == 2
    assert err.count("\n") == 1 and "missing array" in err


def test_data_root_from_environment(tmp_path, monkeypatch):
    mini = write_mini_cifar(tmp_path, CIFAR10)
    write_npz(tmp_path / "cifar10.npz", mini)
    monkeypatch.setenv("TAILSAM_DATA_ROOT", str(tmp_path))
    np.testing.assert_array_equal(load_dataset("cifar10").y_train, mini.y_train)
