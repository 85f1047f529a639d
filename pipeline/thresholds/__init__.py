"""Exit thresholds for the anytime cascade, calibrated on per-exit softmax outputs of the validation split.

Inputs everywhere: ``probs`` (N, K, C) softmax outputs of the K exits, ``labels`` (N,) ints and
``costs`` (K,) the cumulative cost of answering at exit k (ms or FLOPs; nondecreasing). A threshold
is stored in its criterion's units (confidence: answer when max softmax >= t; entropy: when the
entropy in nats <= t) and compared as a score, higher = surer (``to_scores``). The sweep is
MSDNet's budgeted-batch method (``budgeted_curve``); the "default" policy is the cheapest point
reached from the full network, towards cheaper points, while each one's loss against the last exit
stays bounded at a confidence level (``thresholds_table``). numpy
only, so the runtime and the profiler use it without torch.
"""

from __future__ import annotations

from pipeline.thresholds.policies import (DEFAULT_POLICY, DEFAULT_TOLERANCE, LAST_EXIT_POLICY, add_calibration_options,
                                          check_calibration_options, curve_from_table, default_policy,
                                          max_accuracy_name, min_latency_name, policy_thresholds, thresholds_table)
from pipeline.thresholds.scores import (AGGREGATE_NAMES, AGGREGATES, AUTO_AGGREGATE, CRITERIA, DEFAULT_AGGREGATE, Costs,
                                        Simulation, Thresholds, aggregate_exits, check_aggregate, check_criterion,
                                        exit_index, exit_scores, from_scores, simulate, softmax, thresholds_from_json,
                                        thresholds_to_json, to_scores)
from pipeline.thresholds.sweep import (CHOICE_QS, DEFAULT_CONFIDENCE, DEFAULT_QS, CurvePoint, budgeted_curve,
                                       geometric_distribution, last_exit_point, loss_bound, max_accuracy_for_cost,
                                       min_cost_for_accuracy, min_cost_within_loss)

__all__ = ["AGGREGATE_NAMES", "AGGREGATES", "AUTO_AGGREGATE", "CHOICE_QS", "CRITERIA", "DEFAULT_AGGREGATE",
           "DEFAULT_CONFIDENCE", "DEFAULT_POLICY", "DEFAULT_QS", "DEFAULT_TOLERANCE", "LAST_EXIT_POLICY", "Costs", "CurvePoint",
           "Simulation", "Thresholds", "add_calibration_options", "aggregate_exits", "budgeted_curve",
           "check_aggregate", "check_calibration_options", "check_criterion", "curve_from_table", "default_policy",
           "exit_index", "exit_scores", "from_scores", "geometric_distribution", "last_exit_point", "loss_bound",
           "max_accuracy_for_cost", "max_accuracy_name", "min_cost_for_accuracy", "min_cost_within_loss",
           "min_latency_name", "policy_thresholds", "simulate", "softmax", "thresholds_from_json", "thresholds_table",
           "thresholds_to_json", "to_scores"]
