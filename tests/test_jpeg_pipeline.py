"""The JPEG pipeline: torchvision transforms and FileLoader's epochs, determinism, resume, sharding, failures."""

from __future__ import annotations

import warnings
import numpy as np
import pytest
import torch
from PIL import Image

from jpeg_fixture import write_imagenet_lt
from tailsam.data import FileLoader, ImageFiles, jpeg, read_file_dataset
from tailsam.data.jpeg import IMAGENET_MEAN, IMAGENET_STD
from tailsam.errors import DataError

SIZE = 16
COUNTS = [9, 6, 4, 3, 2, 1]   # 25 training images


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    root = write_imagenet_lt(tmp_path_factory.mktemp("inet"), COUNTS, [2] * 6)
    return read_file_dataset("imagenet-lt", root)


def loader(files, *, augment=True, batch_size=4, **kwargs) -> FileLoader:
    transform = jpeg.train_transform(SIZE) if augment else jpeg.test_transform(SIZE, SIZE + 2)
    return FileLoader(files, transform=transform, image_size=SIZE, batch_size=batch_size, mean=IMAGENET_MEAN,
                      std=IMAGENET_STD, seed=kwargs.pop("seed", 7), **kwargs)


def one_epoch(source) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(images.clone(), labels.clone()) for images, labels in source]


def assert_same_batches(a, b) -> None:
    assert len(a) == len(b)
    for (x, y), (u, v) in zip(a, b):
        assert torch.equal(x, u) and torch.equal(y, v)


def test_transforms_give_uint8_hwc_of_the_asked_size():
    image = Image.fromarray(np.random.RandomState(0).randint(0, 256, (48, 64, 3), dtype=np.uint8))
    out = jpeg.train_transform(24)(image)
    assert out.shape == (24, 24, 3) and out.dtype == torch.uint8
    test = jpeg.test_transform(24, 30)(image)
    # Resize(30) makes 40 x 30; CenterCrop(24) keeps rows 3..26 and columns 8..31 of it.
    resized = np.asarray(image.resize((40, 30), Image.BILINEAR, reducing_gap=None))
    assert test.shape == (24, 24, 3)
    assert np.abs(test.numpy().astype(int) - resized[3:27, 8:32].astype(int)).mean() < 3


def test_test_loader_yields_the_files_in_order_normalised_on_the_device(split):
    test = loader(split.test, augment=False, sampler="sequential", batch_size=5, channels_last=True)
    batches = one_epoch(test)
    assert [len(y) for _, y in batches] == [5, 5, 2] and len(test) == 3
    images = torch.cat([x for x, _ in batches])
    assert torch.cat([y for _, y in batches]).tolist() == split.test.labels.tolist()
    assert images.dtype == torch.float32 and images.shape == (12, 3, SIZE, SIZE)
    assert images.is_contiguous(memory_format=torch.channels_last)
    transform = jpeg.test_transform(SIZE, SIZE + 2)
    for i in (0, 7, 11):
        expected = transform(Image.open(split.test.path(i)).convert("RGB")).float().div(255)
        expected = (expected - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
        torch.testing.assert_close(images[i], expected.permute(2, 0, 1))


def test_epochs_position_and_break_then_continue(split):
    a = loader(split.train)
    assert len(a) == 7   # 25 images, batch 4
    first, second = one_epoch(a), one_epoch(a)
    assert a.epoch == 2 and a.position == 0
    assert sorted(torch.cat([y for _, y in first]).tolist()) == sorted(split.train.labels.tolist())
    assert not torch.equal(first[0][0], second[0][0])   # a new order and new augmentations each epoch

    b = loader(split.train)
    one_epoch(b)
    batches = iter(b)
    head = [tuple(t.clone() for t in next(batches)) for _ in range(3)]
    del batches
    assert (b.epoch, b.position) == (1, 3)
    assert_same_batches(head + one_epoch(b), second)


def test_resume_from_state_dict_sees_the_same_images_and_augmentations(split):
    reference = loader(split.train)
    one_epoch(reference)
    second = one_epoch(reference)
    interrupted = loader(split.train)
    one_epoch(interrupted)
    for _ in zip(range(2), interrupted):
        pass
    state = interrupted.state_dict()
    assert state == {"epoch": 1, "position": 2} and all(isinstance(v, int) for v in state.values())
    resumed = loader(split.train)
    resumed.load_state_dict(state)
    assert_same_batches(one_epoch(resumed), second[2:])


def test_batches_do_not_depend_on_workers_and_leave_the_global_generator_alone(split):
    torch.manual_seed(0)
    before = torch.get_rng_state()
    in_process = one_epoch(loader(split.train))
    assert torch.equal(torch.get_rng_state(), before)
    assert_same_batches(one_epoch(loader(split.train, workers=2)), in_process)
    assert not torch.equal(one_epoch(loader(split.train, seed=8))[0][0], in_process[0][0])


@pytest.mark.parametrize("n_images, lengths, seen", [(24, 4, 24), (25, 4, 24), (20, 4, 20), (19, 3, 18)])
def test_ranks_split_the_global_batches_of_one_process(split, n_images, lengths, seen):
    # Batch 3 per rank, 2 ranks: one process with batch 6. A last global batch of 1 < 2 images is
    # dropped (25, 19 images); one of 2 gives each rank one (20 images).
    files = split.train.subset(np.arange(n_images))
    whole = one_epoch(loader(files, batch_size=6))
    ranks = [loader(files, batch_size=3, rank=r, world_size=2) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == lengths
    pieces = [one_epoch(r) for r in ranks]
    for (x, y), (x0, y0), (x1, y1) in zip(whole, *pieces):
        assert torch.equal(torch.cat([x0, x1]), x[:len(x0) + len(x1)]) and torch.equal(torch.cat([y0, y1]), y)
    assert sum(len(y) for p in pieces for _, y in p) == seen


def test_class_balanced_sampler_draws_classes_evenly(split):
    labels = torch.cat([y for _, y in one_epoch(loader(split.train, sampler="class-balanced"))])
    instance = torch.cat([y for _, y in one_epoch(loader(split.train))])
    assert torch.bincount(instance, minlength=6).tolist() == COUNTS
    assert len(labels) == 25 and torch.bincount(labels, minlength=6).max() <= 9
    assert torch.bincount(labels, minlength=6)[5] >= 2   # one image, drawn about 25 / 6 times


def test_an_image_that_fails_to_decode_is_named_or_left_out(split, tmp_path):
    files = split.train.subset(np.arange(8))
    broken = tmp_path / "broken.jpg"
    big = Image.fromarray(np.random.RandomState(0).randint(0, 256, (200, 200, 3), dtype=np.uint8))
    big.save(broken, quality=90)
    broken.write_bytes(broken.read_bytes()[:len(broken.read_bytes()) // 2])   # header intact, data cut
    paths = [files.relative(i) for i in range(8)]
    paths[3] = str(broken)   # absolute: joined to the root, it stays itself
    damaged = ImageFiles.from_paths(files.root, paths, files.labels, files.source)
    with pytest.raises(DataError, match=r"broken.jpg: cannot decode this image \(image file is truncated"):
        one_epoch(loader(damaged, augment=False, sampler="sequential"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        batches = one_epoch(loader(damaged, augment=False, sampler="sequential", skip_bad=True))
    assert [len(y) for _, y in batches] == [3, 4]
    assert "left out" in str(caught[0].message) and "broken.jpg" in str(caught[0].message)
    # Data-parallel, a process whose whole piece fails cannot skip the step the others take. Batch 1
    # per process, in order: global batch 1 is images 2 and 3, and process 1 gets the broken image 3.
    with warnings.catch_warnings(), pytest.raises(DataError, match="every image of a batch of process 1"):
        warnings.simplefilter("ignore")
        one_epoch(loader(damaged, augment=False, sampler="sequential", skip_bad=True, batch_size=1,
                         rank=1, world_size=2))
    assert len(one_epoch(loader(damaged, augment=False, sampler="sequential", skip_bad=True, batch_size=1,
                                rank=0, world_size=2))) == 4
