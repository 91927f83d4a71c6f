"""The analytic work of a step and the bounds drawn from it (bench/work.py, bench/roofline.py)."""

import dataclasses

import pytest

from bench import roofline, work
from bench.ceilings import Ceilings
from model import DEFAULT_CONFIG, DEFAULT_PARAM_COUNT

# The figure: 2·4H·(in + H) FLOPs per timestep, sample and direction, in + H = 192 for both layers.
PER_CELL = 2 * 4 * 64 * (128 + 64)


def test_parameters_add_up_to_the_keras_summary():
    assert sum(work.parameters(DEFAULT_CONFIG).values()) == DEFAULT_PARAM_COUNT


def test_forward_matrix_products_are_the_lstm_cells_and_the_dense_layer():
    w = work.step_work(DEFAULT_CONFIG, "predict")
    assert PER_CELL == 98_304
    # two layers, two directions, 32 reviews of 200 tokens; the Dense layer's 128 -> 1
    assert w.forward.matmul_flops == PER_CELL * 2 * 2 * 32 * 200 + 2 * 32 * 128
    assert w.backward is None and w.optimizer is None and w.dependent_steps == 2 * 200
    assert w.flops == w.forward.flops


def test_train_is_forward_plus_two_products_per_product_plus_adam():
    predict, train = work.step_work(DEFAULT_CONFIG, "predict"), work.step_work(DEFAULT_CONFIG, "train")
    assert train.forward == predict.forward
    assert train.backward.matmul_flops == 2 * predict.forward.matmul_flops
    assert train.optimizer.other_flops == work.ADAM_OPS_PER_PARAMETER * DEFAULT_PARAM_COUNT
    assert train.optimizer.bytes == 28 * DEFAULT_PARAM_COUNT
    assert train.dependent_steps == 4 * 200
    assert 2.9 < train.flops / predict.flops < 3.1  # "a train step is about 3x a forward pass"


def test_work_scales_with_batch_and_maxlen_and_mixed_precision_halves_activation_bytes():
    one = work.step_work(DEFAULT_CONFIG, "predict", 1, 200)
    assert work.step_work(DEFAULT_CONFIG, "predict", 64, 200).forward.matmul_flops == 64 * one.forward.matmul_flops
    assert work.step_work(DEFAULT_CONFIG, "predict", 1, 50).dependent_steps == 100
    mixed = work.step_work(DEFAULT_CONFIG.replace(dtype_policy="mixed_bfloat16"), "predict", 1, 200)
    assert mixed.flops == one.flops and mixed.bytes < one.bytes


@pytest.mark.parametrize("kind, batch, maxlen", [("serve", 32, 200), ("train", 0, 200), ("predict", 32, 0)])
def test_bad_input_is_refused(kind, batch, maxlen):
    with pytest.raises(ValueError):
        work.step_work(DEFAULT_CONFIG, kind, batch, maxlen)


CEILINGS = Ceilings(gemm_flops_per_s=100e9, gemm_n=1024, cell_gemm_s=20e-6, cell_shape=(32, 64, 256),
                    triad_bytes_per_s=10e9, triad_n=2**23, dispatch_s=5e-6, measure_s=1.0)


def test_bounds_are_work_over_ceilings_and_the_largest_binds():
    train = work.step_work(DEFAULT_CONFIG, "train")
    b = roofline.bounds(train, CEILINGS, dispatches=3000)
    assert b.compute_s == pytest.approx(train.flops / 100e9)
    assert b.recurrence_s == pytest.approx(800 * 20e-6)
    assert b.memory_s == pytest.approx(train.bytes / 10e9)
    assert b.dispatch_s == pytest.approx(3000 * 5e-6)
    assert b.binding == "compute" and b.bound_s == b.compute_s  # 75 ms against 16, 15 and the memory bound
    assert roofline.share(b, 2 * b.compute_s) == pytest.approx(0.5)
    slow_cells = dataclasses.replace(CEILINGS, cell_gemm_s=1e-3)
    assert roofline.bounds(train, slow_cells, dispatches=None).binding == "recurrence"
    assert roofline.bounds(train, CEILINGS, dispatches=None).dispatch_s is None


def test_share_refuses_a_nonpositive_median():
    with pytest.raises(ValueError):
        roofline.share(roofline.bounds(work.step_work(DEFAULT_CONFIG, "predict"), CEILINGS, 1), 0.0)


def test_a_gpus_spec_peak_is_found_by_its_reported_name_or_not_at_all():
    from bench.ceilings import spec_peak

    assert spec_peak("NVIDIA H200") == 67e12 and spec_peak("NVIDIA H100 80GB HBM3") == 67e12
    assert spec_peak("NVIDIA H100 PCIe") == 51e12  # the PCIe part, not the SXM one
    assert spec_peak("NVIDIA GeForce RTX 4090") is None and spec_peak("Intel Xeon") is None
