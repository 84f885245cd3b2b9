"""The device-resident loader: epoch coverage, augmentation exactness, samplers, resumable state."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tailsam.data import SAMPLERS, Augment, DeviceLoader

MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


def make_split(n=50, classes=5, size=8, seed=0):
    rng = np.random.RandomState(seed)
    images = rng.randint(0, 256, (n, size, size, 3)).astype(np.uint8)
    labels = np.arange(n) % classes
    return images, labels


def make_loader(images, labels, **kw):
    kw.setdefault("batch_size", 16)
    return DeviceLoader(images, labels, mean=MEAN, std=STD, **kw)


@pytest.mark.parametrize("drop_last", [False, True])
def test_instance_sampler_visits_every_image_once_per_epoch(drop_last):
    images, _ = make_split(n=50)
    ids = np.arange(50)  # label = image id, so the labels tell which images were visited
    loader = make_loader(images, ids, drop_last=drop_last)
    orders = []
    for _ in range(3):
        visited = torch.cat([y for _, y in loader]).numpy()
        if drop_last:
            assert len(visited) == 48 == len(loader) * 16 and len(set(visited)) == 48
        else:
            assert sorted(visited) == list(range(50)) and len(loader) == 4
        orders.append(visited)
    assert not np.array_equal(orders[0], orders[1]), "each epoch needs a fresh order"
    assert loader.epoch == 3 and loader.position == 0


def reference_augment(image, top, left, flip, padding):
    """One image as torchvision would do it: zero-pad, crop, then maybe mirror."""
    padded = np.pad(image, ((padding, padding), (padding, padding), (0, 0)))
    h, w = image.shape[:2]
    crop = padded[top:top + h, left:left + w]
    return crop[:, ::-1] if flip else crop


@pytest.mark.parametrize("channels_last", [False, True])
def test_crops_and_flips_equal_a_per_image_reference(channels_last):
    images, labels = make_split(n=40)
    loader = make_loader(images, labels, augment=Augment(padding=4, flip=True), channels_last=channels_last)
    plan = loader.epoch_plan()
    assert plan.flip.shape == plan.top.shape == (1, len(images))   # one view
    assert plan.flip.any() and not plan.flip.all() and len(set(plan.top[0].tolist())) > 3
    batches = [x for x, _ in loader]
    out = torch.cat(batches)
    assert out.shape == (40, 3, 8, 8) and out.dtype == torch.float32
    memory = torch.channels_last if channels_last else torch.contiguous_format
    assert all(x.is_contiguous(memory_format=memory) for x in batches)
    for pos, idx in enumerate(plan.order.tolist()):
        crop = reference_augment(images[idx], int(plan.top[0, pos]), int(plan.left[0, pos]), bool(plan.flip[0, pos]), 4)
        expected = (crop / 255.0 - np.array(MEAN)) / np.array(STD)
        np.testing.assert_allclose(out[pos].permute(1, 2, 0).numpy(), expected, rtol=0, atol=1e-5)


def test_two_views_are_independent_crops_of_the_same_images_and_the_first_is_the_one_view_loader():
    images, labels = make_split(n=40)
    one = make_loader(images, labels, augment=Augment(padding=4, flip=True))
    two = make_loader(images, labels, augment=Augment(padding=4, flip=True), views=2)
    plan = two.epoch_plan()
    assert plan.top.shape == (2, 40) and not torch.equal(plan.top[0], plan.top[1])
    first, second, batch_labels = [], [], []
    for (view1, view2), y in two:
        first.append(view1)
        second.append(view2)
        batch_labels.append(y)
    torch.testing.assert_close(torch.cat(first), torch.cat([x for x, _ in one]), rtol=0, atol=0)
    out = torch.cat(second)
    for pos, idx in enumerate(plan.order.tolist()):
        crop = reference_augment(images[idx], int(plan.top[1, pos]), int(plan.left[1, pos]), bool(plan.flip[1, pos]), 4)
        np.testing.assert_allclose(out[pos].permute(1, 2, 0).numpy(), (crop / 255.0 - np.array(MEAN)) / np.array(STD),
                                   rtol=0, atol=1e-5)
    assert torch.equal(torch.cat(batch_labels), torch.as_tensor(labels)[plan.order])


def test_without_augmentation_images_are_only_normalised():
    images, labels = make_split(n=20)
    loader = make_loader(images, labels, sampler="sequential", batch_size=7)
    out = torch.cat([x for x, _ in loader]).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(out, (images / 255.0 - np.array(MEAN)) / np.array(STD), atol=1e-5)


def test_single_channel_images_and_flip_off():
    images = np.random.RandomState(1).randint(0, 256, (30, 8, 8, 1)).astype(np.uint8)
    loader = DeviceLoader(images, np.zeros(30), batch_size=30, mean=(0.3,), std=(0.4,),
                          augment=Augment(padding=1, flip=False))
    plan = loader.epoch_plan()
    (x, _), = list(loader)
    assert x.shape == (30, 1, 8, 8) and not plan.flip.any()
    for pos, idx in enumerate(plan.order.tolist()):
        crop = reference_augment(images[idx], int(plan.top[0, pos]), int(plan.left[0, pos]), False, 1)
        np.testing.assert_allclose(x[pos, 0].numpy(), (crop[..., 0] / 255.0 - 0.3) / 0.4, atol=1e-5)


def test_class_balanced_sampler_draws_classes_uniformly():
    counts = np.array([400, 150, 60, 25, 10])
    labels = np.repeat(np.arange(5), counts)
    images = np.zeros((len(labels), 4, 4, 3), np.uint8)
    loader = make_loader(images, labels, sampler="class-balanced", batch_size=128)
    drawn = torch.cat([y for _ in range(10) for _, y in loader]).numpy()
    freq = np.bincount(drawn, minlength=5)
    n = len(drawn)
    # Each class count is Binomial(n, 1/5): allow 4 standard deviations.
    assert np.all(np.abs(freq - n / 5) < 4 * np.sqrt(n * 0.2 * 0.8)), freq


def test_sqrt_sampler_draws_classes_in_proportion_to_sqrt_counts():
    counts = np.array([400, 100, 25])
    labels = np.repeat(np.arange(3), counts)
    images = np.zeros((len(labels), 4, 4, 3), np.uint8)
    loader = make_loader(images, labels, sampler="sqrt", batch_size=128)
    drawn = torch.cat([y for _ in range(10) for _, y in loader]).numpy()
    p = np.sqrt(counts) / np.sqrt(counts).sum()  # 20:10:5
    freq = np.bincount(drawn, minlength=3)
    assert np.all(np.abs(freq - len(drawn) * p) < 4 * np.sqrt(len(drawn) * p * (1 - p))), freq


def test_class_sampler_draws_every_image_of_a_rare_class():
    labels = torch.as_tensor(np.repeat(np.arange(2), [3, 40]))
    sampler = SAMPLERS.build("class-balanced", labels)
    drawn = sampler.epoch_order(torch.Generator().manual_seed(0))
    assert len(drawn) == 43 and drawn.min() >= 0 and drawn.max() < 43
    rare = drawn[labels[drawn] == 0]
    assert set(rare.tolist()) == {0, 1, 2}, "all three images of the rare class appear"


@pytest.mark.parametrize("stop_after", [0, 2, 4])   # batches of epoch 2 consumed before saving
def test_state_round_trip_reproduces_the_next_batches(stop_after):
    images, labels = make_split(n=60)
    settings = dict(augment=Augment(padding=2), seed=5, batch_size=16)
    first = make_loader(images, labels, **settings)
    for _ in first:       # epoch 0
        pass
    for _ in first:       # epoch 1
        pass
    it = iter(first)
    for _ in range(stop_after):
        next(it)
    state = first.state_dict()
    expected = [b for _, b in zip(range(6), _continue(first, it))]

    resumed = make_loader(images, labels, **settings)
    resumed.load_state_dict(torch.load(_saved(state), weights_only=True))
    got = [b for _, b in zip(range(6), _continue(resumed, iter(resumed)))]
    assert len(got) == len(expected) == 6
    for (xe, ye), (xg, yg) in zip(expected, got):
        assert torch.equal(xe, xg) and torch.equal(ye, yg)


def _continue(loader, it):
    """The rest of the current epoch from `it`, then the following epochs."""
    yield from it
    while True:
        yield from loader


def _saved(state):
    import io

    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return buffer


def test_breaking_out_continues_the_same_epoch():
    images, _ = make_split(n=64)
    loader = make_loader(images, np.arange(64), batch_size=16)
    seen = []
    for _, y in loader:
        seen.append(y)
        break
    for _, y in loader:
        seen.append(y)
    assert sorted(torch.cat(seen).tolist()) == list(range(64)) and loader.epoch == 1


def test_same_seed_same_batches_other_seed_different():
    images, labels = make_split(n=32)
    run = lambda seed: torch.cat([y for _, y in make_loader(images, np.arange(32), seed=seed)])  # noqa: E731
    assert torch.equal(run(3), run(3)) and not torch.equal(run(3), run(4))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_batches_equal_cpu_batches():
    images, labels = make_split(n=40)
    cpu = [x for x, _ in make_loader(images, labels, augment=Augment())]
    gpu = [x.cpu() for x, _ in make_loader(images, labels, augment=Augment(), device="cuda")]
    for a, b in zip(cpu, gpu):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize(("n", "steps", "last_sizes"), [(23, 3, (2, 1)), (21, 2, None)])
def test_processes_split_the_global_batches_of_one_process(n, steps, last_sizes):
    # Per-process batch 5 on 2 processes = global batch 10: the pieces, put together, are the
    # single process's batches (crops and flips included); a last global batch of 1 < 2 images is dropped.
    images, labels = make_split(n=n)
    single = make_loader(images, labels, batch_size=10, augment=Augment(padding=2, flip=True), seed=3)
    pieces = [make_loader(images, labels, batch_size=5, augment=Augment(padding=2, flip=True), seed=3,
                          rank=rank, world_size=2) for rank in (0, 1)]
    assert len(pieces[0]) == len(pieces[1]) == steps
    for step, (whole, part0, part1) in enumerate(zip(single, *pieces)):
        assert torch.equal(torch.cat([part0[0], part1[0]]), whole[0])
        assert torch.equal(torch.cat([part0[1], part1[1]]), whole[1])
        if step == steps - 1 and last_sizes:
            assert (len(part0[1]), len(part1[1])) == last_sizes


def test_class_aware_sampling_cycles_over_classes_and_over_each_class_images():
    labels = torch.tensor([0] * 50 + [1] * 7 + [2] * 3)
    order = SAMPLERS.build("class-aware", labels).epoch_order(torch.Generator().manual_seed(0))
    assert len(order) == 60
    drawn = labels[order]
    for start in range(0, 60, 3):   # every pass of 3 draws visits each class once
        assert sorted(drawn[start:start + 3].tolist()) == [0, 1, 2]
    for c, size in ((0, 50), (1, 7), (2, 3)):
        images = order[drawn == c].tolist()
        assert len(images) == 20 and all(labels[i] == c for i in images)
        cycles = [images[start:start + size] for start in range(0, 20, size)]
        assert all(len(set(cycle)) == len(cycle) for cycle in cycles)   # no repeat within a pass over the class
