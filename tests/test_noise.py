"""Noise floor, base choice and paired re-evaluation: the arithmetic, on synthetic rewards."""

from __future__ import annotations

import math

import numpy as np
import pytest

from deepaug_pipeline.search.noise import ACCEPT_SE, BaseChoice, NoiseFloor, OpScreen, beyond_accept_se, choose_base, paired_gain, reachable_z, screened_out


def test_noise_floor_gain_and_its_standard_error():
    floor = NoiseFloor("standard", (0.80, 0.82, 0.84))
    assert floor.mean == pytest.approx(0.82) and floor.std == pytest.approx(0.02)
    gain, se = floor.gain(0.86, seed_index=1)
    # paired with the base on the same seed; two fits' difference: Var = 2σ²
    assert gain == pytest.approx(0.04) and se == pytest.approx(0.02 * math.sqrt(2))


def test_base_choice_takes_the_highest_mean_and_pairs_the_margin_by_seed():
    choice = choose_base({"none": [0.80, 0.81, 0.79], "crop": [0.82, 0.84, 0.80], "standard": [0.83, 0.86, 0.81]})
    assert choice.chosen == "standard" and choice.runner_up == "crop"
    diffs = np.array([0.01, 0.02, 0.01])
    assert choice.margin == pytest.approx(diffs.mean())
    assert choice.margin_se == pytest.approx(diffs.std(ddof=1) / math.sqrt(3))
    text = choice.describe({"standard": "crop + flip", "crop": "pad + crop", "none": "none"})
    assert text.startswith("base augmentation: crop + flip, mean reward 0.8333; it beat pad + crop by +0.0133 (")
    assert "+4.0 SE, beyond seed noise" in text
    assert "set in the config" in choose_base({"standard": [0.8, 0.9]}).describe({"standard": "crop + flip"})
    assert choose_base({"standard": [0.8, 0.9]}, failed=["none", "crop"]).describe({"standard": "crop + flip"}) == (
        "base augmentation: crop + flip (the only one measured: none, crop failed to train)")
    # A tie on every seed is no win; the same margin on every seed has no spread, and is one.
    assert "+0.0000 (+0.0 SE, within seed noise)" in choose_base({"crop": [0.8, 0.9], "standard": [0.8, 0.9]}).describe({})
    assert "+0.0100 (+inf SE, beyond seed noise)" in choose_base({"crop": [0.8, 0.9], "standard": [0.81, 0.91]}).describe({})


def test_paired_gain_mean_se_and_acceptance_at_two_standard_errors():
    strong = paired_gain(7, {3: 0.86, 4: 0.88, 5: 0.87}, {3: 0.84, 4: 0.85, 5: 0.85})
    assert strong.gains == pytest.approx((0.02, 0.03, 0.02))
    assert strong.mean == pytest.approx(0.07 / 3)
    assert strong.se == pytest.approx(np.std([0.02, 0.03, 0.02], ddof=1) / math.sqrt(3))
    assert strong.z == pytest.approx(strong.mean / strong.se) and strong.z > 2 and strong.accepted
    noisy = paired_gain(8, {3: 0.86, 4: 0.84, 5: 0.87}, {3: 0.84, 4: 0.85, 5: 0.85})
    assert 0 < noisy.mean and noisy.z < 2 and not noisy.accepted
    worse = paired_gain(9, {3: 0.80, 4: 0.81, 5: 0.80}, {3: 0.84, 4: 0.85, 5: 0.85})
    assert worse.mean < 0 and not worse.accepted


def test_failed_fits_leave_their_seed_out_and_one_pair_is_never_enough():
    pair = paired_gain(1, {3: 0.90, 4: None, 5: 0.91}, {3: 0.80, 4: 0.81, 5: None})
    assert pair.gains == pytest.approx((0.10,)) and math.isnan(pair.se) and not pair.accepted
    assert not paired_gain(2, {3: None}, {3: 0.8}).accepted
    # A policy that broke training on a seed where the base trained is not accepted on the others' strength.
    broke = paired_gain(3, {3: 0.90, 4: None, 5: 0.91, 6: 0.905}, {3: 0.80, 4: 0.81, 5: 0.80, 6: 0.80})
    assert broke.candidate_failed == 1 and broke.z > 2 and not broke.accepted
    assert paired_gain(4, {3: 0.90, 4: None, 5: 0.91}, {3: 0.80, 4: None, 5: 0.80}).candidate_failed == 0


def test_a_base_that_was_not_compared_has_no_margin():
    choice = choose_base({"none": [0.7, 0.72]})
    assert isinstance(choice, BaseChoice) and choice.runner_up is None and math.isnan(choice.margin)


def test_an_op_is_screened_out_only_when_every_magnitude_hurts_beyond_two_se():
    screens = [
        OpScreen("a", 0.25, -0.011, 0.005), OpScreen("a", 0.75, -0.03, 0.005),  # both beyond 2 SE: out
        OpScreen("b", 0.25, -0.009, 0.005), OpScreen("b", 0.75, -0.03, 0.005),  # 1.8 SE at 0.25: kept
        OpScreen("c", 0.25, None, None), OpScreen("c", 0.75, -0.02, 0.005),  # a failed fit counts against it
        OpScreen("d", 0.25, 0.02, 0.005), OpScreen("d", 0.75, None, None),
        OpScreen("e", 0.25, -0.001, None), OpScreen("e", 0.75, -1e-6, None),  # no SE: any loss hurts
        OpScreen("f", 0.25, 0.0, None), OpScreen("f", 0.75, -0.5, 0.1),
    ]
    assert screened_out(screens) == ("a", "c", "e")


@pytest.mark.parametrize("gains, remaining", [((-0.004,), 2), ((0.003,), 2), ((0.01, -0.02), 1), ((0.002, 0.001), 3),
                                              ((-0.01, -0.02), 3), ((0.0,), 2), ((0.005, -0.001, 0.002), 2)])
def test_reachable_z_is_the_supremum_over_every_completion(gains, remaining):
    """No completion of the remaining seeds beats the bound, and equal completions come as close as we like."""
    bound = reachable_z(gains, remaining)
    rng = np.random.default_rng(0)
    rest = rng.normal(rng.uniform(-0.05, 0.2, (20000, 1)), rng.uniform(1e-4, 0.05, (20000, 1)), (20000, remaining))
    equal = np.repeat(np.geomspace(1e-4, 1e4, 400)[:, None], remaining, axis=1)
    completed = np.hstack([np.broadcast_to(gains, (20400, len(gains))), np.vstack([rest, equal])])
    n = completed.shape[1]
    z = completed.mean(axis=1) / (completed.std(axis=1, ddof=1) / math.sqrt(n))
    assert z.max() <= bound + 1e-9
    if bound < 1e6:  # a positive known gain: equal completions make the spread vanish, z unbounded
        assert z.max() > bound - 1e-3 * max(1.0, abs(bound))


def test_with_three_seeds_one_negative_pair_settles_a_candidate_and_one_positive_keeps_it():
    assert reachable_z((-0.0001,), 2) == pytest.approx(ACCEPT_SE) and not reachable_z((-0.0001,), 2) > ACCEPT_SE
    assert reachable_z((0.0001,), 2) > 1e6  # the next two equal to it: no spread, accepted
    assert reachable_z((), 3) == math.inf and reachable_z((0.01,), 0) == -math.inf  # nothing known; one pair only
    assert reachable_z((-0.001,), 4) > ACCEPT_SE  # with 5 seeds the rest could still outweigh it
    full = paired_gain(0, {3: 0.86, 4: 0.88, 5: 0.87}, {3: 0.84, 4: 0.85, 5: 0.85})
    assert reachable_z(full.gains, 0) == pytest.approx(full.z)


def test_a_z_of_2_that_rounding_lifts_above_it_is_a_tie_so_stopping_at_the_cap_decides_alike():
    """A first gain of exactly 0 (accuracies on a finite sample tie) reaches the cap of 2 exactly; the float mean and
    SE of the completed gains give 2.0000000000000004, which must not count as beyond 2 SE."""
    tie = paired_gain(1, {3: 0.75, 4: 1522 / 2000, 5: 1535 / 2000}, {3: 0.75, 4: 0.75, 5: 1513 / 2000})
    assert tie.gains[0] == 0.0 and tie.z > ACCEPT_SE and not tie.accepted
    assert reachable_z((0.0,), 2) == ACCEPT_SE and not beyond_accept_se(reachable_z((0.0,), 2))
    assert paired_gain(2, {3: 0.76, 4: 0.77, 5: 0.765}, {3: 0.75, 4: 0.755, 5: 0.76}).accepted  # clear z: still counts


def test_differences_equal_but_for_float_rounding_have_no_spread():
    """The same 10-image difference on every seed, as 1 − accuracy: float rounding left a spread of 6e-17, which
    made a z of hundreds of thousands ("beyond seed noise") where there is no noise estimate at all."""
    from deepaug_pipeline.search.noise import sample_std

    correct = [845, 826, 808]  # of 1000
    gains = [(1 - k / 1000) - (1 - (k + 10) / 1000) for k in correct]
    assert np.std(gains, ddof=1) > 0  # the residue this is about
    assert sample_std(gains) == 0.0
    assert paired_gain(None, dict(enumerate(gains)), dict.fromkeys(range(3), 0.0)).z == math.inf
    assert sample_std([0.8, 0.8001, 0.8]) > 0  # one image in 10k is a spread
