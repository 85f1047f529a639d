"""The model card's account of training time (per machine, with the teacher's run added) and of the model's shape."""

from __future__ import annotations

from pipeline.evaluate import model_shape, time_by_machine, training_time_lines


def test_time_by_machine_keeps_the_order_and_counts_unrecorded_epochs():
    history = [{"seconds": 3600.0}, {"seconds": 1800.0, "machine": "gpu"}, {"seconds": 1800.0},
               {"seconds": 900.0, "machine": "cpu"}, {"seconds": 900.0, "machine": "gpu"}]
    assert time_by_machine(history) == ("machine not recorded: 2 epochs, 1.50 h; gpu: 2 epochs, 0.75 h; "
                                        "cpu: 1 epochs, 0.25 h")


def test_a_missing_teacher_leaves_the_students_time(tmp_path):
    lines = training_time_lines([{"seconds": 7200.0, "machine": "cpu"}], tmp_path / "gone.pt")
    assert lines[0].startswith("- training wall time: 2.00 h over 1 epochs (cpu: 1 epochs, 2.00 h;")
    assert "its training time is unknown here" in lines[1] and "does not exist" in lines[1]


def test_the_teachers_time_is_added(tmp_path, tiny_model):
    from pipeline.checkpoint import save_checkpoint

    teacher = tmp_path / "teacher.pt"
    save_checkpoint(teacher, tiny_model, "msdnet_cifar", ["a", "b"], {"seed": 0, "size": 1},
                    {"history": [{"seconds": 1800.0, "machine": "cpu"}] * 2})
    lines = training_time_lines([{"seconds": 3600.0}], teacher)
    assert lines[1] == (f"- teacher `{teacher}`: 1.00 h over 2 epochs (cpu: 2 epochs, 1.00 h); "
                        "2.00 h in all with the student's")


def test_the_card_counts_the_exits_it_measured_for_any_model():
    msdnet = {"model": "msdnet_cifar", "config": {"n_blocks": 5, "gr_factor": [1, 2, 4]}}
    factory = {"model": "pipeline.models.ranet:build", "config": {"factory": "pipeline.models.ranet:build", "kwargs": {}}}
    assert model_shape(msdnet, 5) == "`msdnet_cifar`, 3 scales, 5 exits"
    assert model_shape(factory, 4) == "`pipeline.models.ranet:build`, 4 exits"
