"""The verdict that ends `musicrec run`: our models beside their best baseline, in words."""

from musicrec_assets.cli.summary import _setting, verdicts


def test_the_verdict_names_the_best_baseline_and_the_margin():
    model = {
        "feedback": "explicit",
        "ndcg_at_10": 0.2934,
        "ndcg_at_10_best_baseline": 0.2766,
        "ndcg_at_10_best_baseline_model": "item_knn",
        "rmse": 0.7435,
        "rmse_best_baseline": 0.8879,
        "rmse_best_baseline_model": "bias",
    }
    assert verdicts(model) == [
        "verdict: the ranking model beats the best baseline, item-kNN, by 6% NDCG@10 on "
        "held-out ratings (0.293 vs 0.277, higher is better)",
        "verdict: the rating model beats the best baseline, bias, by 16% RMSE on held-out "
        "ratings (0.744 vs 0.888, lower is better)",
    ]


def test_a_model_that_loses_says_so_whatever_the_baseline_is_called():
    model = {
        "feedback": "implicit",
        "ndcg_at_10": 0.20,
        "ndcg_at_10_best_baseline": 0.25,
        "ndcg_at_10_best_baseline_model": "some_new_baseline",
    }
    assert verdicts(model) == [
        "verdict: the ranking model does not beat the best baseline, some new baseline: 20% "
        "worse NDCG@10 on held-out play counts (0.200 vs 0.250, higher is better)"
    ]


def test_a_list_within_the_held_out_noise_of_its_baseline_is_level_with_it():
    model = {
        "feedback": "explicit",
        "ndcg_at_10": 0.308,
        "ndcg_at_10_best_baseline": 0.310,
        "ndcg_at_10_best_baseline_model": "item_knn",
        "ndcg_at_10_best_baseline_noise": 0.006,
    }
    assert verdicts(model) == [
        "verdict: the ranking model is level with the best baseline, item-kNN, within the "
        "held-out noise (1% worse NDCG@10, ±0.006) on held-out ratings (0.308 vs "
        "0.310, higher is better)"
    ]
    model["ndcg_at_10_best_baseline_noise"] = 0.001
    assert "does not beat the best baseline, item-kNN" in verdicts(model)[0]


def test_no_verdict_without_a_comparison():
    assert verdicts({"feedback": "explicit", "ndcg_at_10": 0.3}) == []


def test_searched_settings_are_shown_as_a_person_reads_them():
    shown = [_setting(v) for v in (0.012415370911319532, 100.0, 3649.394990235777, 15, "rating")]
    assert shown == ["0.0124", "100", "3649", "15", "rating"]
