"""hparams_search=optuna in one process: the search space syntax, a resumable study, pruning by
per-epoch reports (status "pruned" in run.json and in bigmodel report, Optuna's plots), bad settings.
Several workers, PostgreSQL, a killed worker and DDP trials are in test_workers.py."""

from __future__ import annotations

import json

import pytest

from tests.conftest import FAST

SEARCH = ["train", "-m", "hparams_search=optuna"]


def study_of(sweep, name=None):
    """The sweep's study: named after the sweep (its run_name, the directory's name) by default."""
    import optuna

    return optuna.load_study(study_name=name or sweep.name, storage=f"sqlite:///{sweep / 'optuna.db'}")


def job_dirs(sweep) -> list[str]:
    return sorted((p.name for p in sweep.iterdir() if p.is_dir()), key=int)


def test_the_search_space_syntax_becomes_optuna_distributions():
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    from bigmodel_cli.search.space import parse

    space = parse(
        {"optimizer": "choice(adam, sgd)", "optimizer.lr": "tag(log, interval(1e-4, 1e-1))", "model.depth": "3"},
        ["model.width=int(interval(8, 64))", "data.batch_size=range(16, 80, 16)", "seed=1,2", "model.depth=4"],
    )
    d = space.distributions
    assert d["optimizer"] == CategoricalDistribution(["adam", "sgd"])
    assert d["optimizer.lr"] == FloatDistribution(1e-4, 1e-1, log=True)
    assert d["model.width"] == IntDistribution(8, 64)
    assert d["data.batch_size"] == IntDistribution(16, 64, step=16)  # stop excluded
    assert d["seed"] == CategoricalDistribution([1, 2])
    assert space.fixed == ["model.depth=4"]  # the command line wins over params
    assert space.overrides({"optimizer": "sgd"}) == ["optimizer=sgd", "model.depth=4"]


def test_a_search_resumes_its_study_numbers_jobs_by_trial_and_never_replays_draws(cli, in_tmp_cwd):
    import optuna

    base = [*SEARCH, *FAST, "run_name=opt"]
    assert cli(*base, "hydra.sweeper.n_trials=2")[0] == 0
    sweep = in_tmp_cwd / "multirun" / "train" / "opt"
    # a trial left RUNNING by something that never kept a heartbeat (an old search, a killed asker)
    study_of(sweep).ask()
    code, out, err = cli(
        *base, "hydra.sweeper.n_trials=4", "hparams_search.heartbeat_interval=1", "hparams_search.grace_period=2"
    )
    assert code == 0, err
    assert "resuming optuna study 'opt'" in out and "2 trial(s) already run, 1 running, 1 to go" in out
    trials = study_of(sweep).trials
    State = optuna.trial.TrialState
    # trial 2 (the orphan) is failed and queued again: as trial 4 when this search began within its
    # grace period, as trial 3 when start-up took longer (a loaded machine); every job directory is
    # its trial's number
    assert [t.state for t in trials] == [State.COMPLETE, State.COMPLETE, State.FAIL, State.COMPLETE, State.COMPLETE]
    assert [t.system_attrs.get("failed_trial") for t in trials[3:]] in ([None, 2], [2, None])
    assert job_dirs(sweep) == ["0", "1", "3", "4"]
    for number in (0, 1, 3, 4):
        record = json.loads((sweep / str(number) / "run.json").read_text())
        assert record["config"]["optimizer"]["lr"] == pytest.approx(trials[number].params["optimizer.lr"])
    first, later = [t.params for t in trials[:2]], [t.params for t in trials[3:]]
    assert set(later[0]) == {"optimizer", "optimizer.lr", "optimizer.weight_decay", "regularizer.dropout"}
    assert all(p["optimizer.lr"] != q["optimizer.lr"] for p in later for q in first)
    assert study_of(sweep).direction == optuna.study.StudyDirection.MAXIMIZE
    assert "best_params" in (sweep / "optimization_results.yaml").read_text()


def test_the_same_seed_draws_the_same_trials(cli, in_tmp_cwd):
    runs = []
    for name in ("a", "b"):
        assert (
            cli(*SEARCH, *FAST, f"run_name={name}", "hydra.sweeper.n_trials=2", "trainer.limit_train_batches=1")[0] == 0
        )
        runs.append([t.params for t in study_of(in_tmp_cwd / "multirun" / "train" / name).trials])
    assert runs[0] == runs[1] and runs[0][0] != runs[0][1]


def test_hopeless_trials_are_pruned_before_their_last_epoch(cli, in_tmp_cwd):
    """lr=1e-9 cannot learn in 4 epochs; once a trial with lr=1e-2 has completed, the median pruner
    stops every lr=1e-9 trial after its warm-up epoch: PRUNED in the study, "pruned" in run.json and
    in the report, no test run; the good trials complete all their epochs."""
    import optuna

    code, out, err = cli(
        *SEARCH, "run_name=prune", "trainer.max_epochs=4", "trainer.limit_train_batches=6", "trainer.limit_val_batches=2",
        "hydra.sweeper.n_trials=6", "hparams_search.sampler=random", "hparams_search.pruner=median",
        "hparams_search.pruner_startup_trials=1", "hparams_search.pruner_warmup_epochs=1",
        "optimizer=adam", "optimizer.lr=choice(0.01,1e-9)", "optimizer.weight_decay=0", "regularizer.dropout=0",
    )  # fmt: skip
    assert code == 0, err
    sweep = in_tmp_cwd / "multirun" / "train" / "prune"
    State = optuna.trial.TrialState
    trials = study_of(sweep).trials
    first_good = min(t.number for t in trials if t.params["optimizer.lr"] == 0.01)
    assert trials[first_good].state == State.COMPLETE and len(trials[first_good].intermediate_values) == 4
    hopeless = [t for t in trials if t.params["optimizer.lr"] == 1e-9 and t.number > first_good]
    assert hopeless, "the seeded draws give hopeless trials after a good one"
    for trial in hopeless:
        assert trial.state == State.PRUNED and sorted(trial.intermediate_values) == [0, 1]
        record = json.loads((sweep / str(trial.number) / "run.json").read_text())
        assert record["status"] == "pruned" and record["pruned_after_epoch"] == 1
        assert "test/acc" not in record["metrics"]
    code, out, err = cli("report", str(sweep))
    assert code == 0, err
    summary = (sweep / "summary.csv").read_text()
    assert summary.count(",pruned,") == sum(t.state == State.PRUNED for t in trials)
    assert "hparams_search.trial" not in summary.splitlines()[0]  # the trial is the job's number
    for picture in ("optuna_history.png", "optuna_importances.png"):
        assert (sweep / picture).read_bytes()[:4] == b"\x89PNG"


def test_without_a_pruner_every_trial_runs_all_its_epochs(cli, in_tmp_cwd):
    import optuna

    code, _, err = cli(
        *SEARCH, "run_name=noprune", "trainer.max_epochs=3", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1",
        "hydra.sweeper.n_trials=3", "optimizer.lr=choice(0.01,1e-9)",
    )  # fmt: skip
    assert code == 0, err
    trials = study_of(in_tmp_cwd / "multirun" / "train" / "noprune").trials
    assert all(t.state == optuna.trial.TrialState.COMPLETE and len(t.intermediate_values) == 3 for t in trials)


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        (
            "hparams_search.pruner=asha",
            "hparams_search.pruner=asha is not known; valid choices: none, median, hyperband",
        ),
        ("hparams_search.storage=nosuchdb://x", "hparams_search.storage=nosuchdb://x cannot be opened"),
        ("hparams_search.grace_period=5", "hparams_search.grace_period=5 must be longer than"),
    ],
)
def test_bad_search_settings_are_one_line(cli, in_tmp_cwd, setting, expected):
    code, _, err = cli(*SEARCH, *FAST, "run_name=bad", setting)
    assert code == 2 and expected in err and "Traceback" not in err


@pytest.mark.parametrize("pruner", ["none", "median", "hyperband", "successive_halving"])
def test_each_pruner_stops_trials_far_below_the_others_and_none_never_does(pruner):
    """The pruner a name builds, on a study where eight trials reach 0.9 at every epoch and then four
    report 0.1; every trial asks should_prune() after each report, as a job does. Every pruner but
    none stops losers (median all of them after the warm-up; hyperband and successive halving at a
    rung, except in hyperband's bracket that has no rung before the last epoch)."""
    import optuna

    from bigmodel_cli.config.catalogue import option_yaml
    from bigmodel_cli.search.study import SearchSettings, make_pruner

    node = {**option_yaml("hparams_search", "optuna")["hparams_search"], "storage": None}
    settings = SearchSettings(**{**node, "pruner": pruner, "pruner_startup_trials": 2, "pruner_warmup_epochs": 1})
    study = optuna.create_study(study_name="pruners", direction="maximize", pruner=make_pruner(settings, max_epochs=9))

    def run_trial(value: float) -> list[bool]:
        trial, decisions = study.ask(), []
        for epoch in range(9):
            trial.report(value, epoch)
            decisions.append(trial.should_prune())
            if decisions[-1]:
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                return decisions
        study.tell(trial, value)
        return decisions

    assert not any(any(run_trial(0.9)) for _ in range(8))
    losers = [run_trial(0.1) for _ in range(4)]
    pruned = [any(decisions) for decisions in losers]
    expected = {"none": 0, "median": 4}.get(pruner)
    assert sum(pruned) == expected if expected is not None else sum(pruned) >= 2
    assert all(not decisions[0] for decisions in losers)  # nobody is pruned before a second epoch


def test_n_jobs_batches_trials_and_max_failure_rate_stops_a_failing_search(cli, in_tmp_cwd):
    code, out, err = cli(*SEARCH, *FAST, "run_name=batched", "hydra.sweeper.n_trials=3", "hydra.sweeper.n_jobs=2")
    assert code == 0, err
    sweep = in_tmp_cwd / "multirun" / "train" / "batched"
    assert len(study_of(sweep).trials) == 3 and job_dirs(sweep) == ["0", "1", "2"]
    assert "Launching 2 jobs locally" in out + err and "Launching 1 jobs locally" in out + err

    code, _, err = cli(
        *SEARCH, *FAST, "run_name=failing", "hydra.sweeper.n_trials=4", "hydra.sweeper.max_failure_rate=0.5",
        "optimizer.lr=-1",
    )  # fmt: skip
    assert code == 2 and "1 of this worker's 1 trial(s) failed, more than hydra.sweeper.max_failure_rate=0.5" in err
    assert len(study_of(in_tmp_cwd / "multirun" / "train" / "failing").trials) == 1


def test_fail_fast_fails_the_trial_that_failed_and_queues_none_again(cli, in_tmp_cwd):
    import optuna

    code, _, err = cli(
        *SEARCH, *FAST, "run_name=fastfail", "hydra.sweeper.n_trials=3", "optimizer.lr=-1", "--fail-fast"
    )
    assert code == 1 and "optimizer.lr=-1 is out of range" in err and "stopped at the first failed job" in err
    (trial,) = study_of(in_tmp_cwd / "multirun" / "train" / "fastfail").trials  # no retry of it queued
    assert trial.state == optuna.trial.TrialState.FAIL


def test_two_sweeps_on_one_storage_get_a_study_each_and_both_run(cli, in_tmp_cwd):
    """The study is named after the sweep (its run_name), so a second sweep on a shared database
    starts its own study instead of resuming the first one's; hparams_search.study_name joins one."""
    import optuna

    storage = f"sqlite:///{in_tmp_cwd / 'shared.db'}"
    for name in ("s1", "s2"):
        code, out, err = cli(
            *SEARCH, *FAST, f"run_name={name}", "hydra.sweeper.n_trials=2", f"hparams_search.storage={storage}"
        )
        assert code == 0, err
        assert "resuming" not in out and job_dirs(in_tmp_cwd / "multirun" / "train" / name) == ["0", "1"]
    studies = {s.study_name: s.n_trials for s in optuna.get_all_study_summaries(storage)}
    assert studies == {"s1": 2, "s2": 2}
    code, out, err = cli(
        *SEARCH, *FAST, "run_name=s3", "hydra.sweeper.n_trials=2", f"hparams_search.storage={storage}",
        "hparams_search.study_name=s1",
    )  # fmt: skip
    assert code == 0 and "resuming optuna study 's1' in" in out and "0 to go" in out, err
    assert "s3" not in {s.study_name for s in optuna.get_all_study_summaries(storage)}


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([*SEARCH, "objective_mode=maximum"], "objective_mode=maximum is not known; valid choices: max, min"),
        (["train", "objective_mode=maximum"], "objective_mode=maximum is not known; valid choices: max, min"),
        ([*SEARCH, "hydra.sweeper.direction=up"], "hydra.sweeper.direction=up is not known; valid choices: maximize"),
        ([*SEARCH, "hparams_search.heartbeat_interval=abc"], "hparams_search.heartbeat_interval=abc is not valid"),
        ([*SEARCH, "hparams_search.heartbeat_interval=0"], "hparams_search.heartbeat_interval=0 is not valid"),
        ([*SEARCH, "data.batch_size=range(16,64,-16)"], "data.batch_size=range(16, 64, -16) has no values"),
    ],
    ids=["objective_mode", "objective_mode-no-search", "direction", "heartbeat-abc", "heartbeat-0", "empty-range"],
)
def test_bad_search_input_is_one_line_and_writes_nothing(cli, in_tmp_cwd, args, expected):
    code, out, err = cli(*args, *FAST, "run_name=bad")
    assert code == 2 and expected in err and "Traceback" not in out + err, err
    assert len(err.strip().splitlines()) == 1
    assert not (in_tmp_cwd / "multirun").exists() and not (in_tmp_cwd / "outputs").exists()


def test_a_descending_range_is_the_same_values_as_python_gives(cli, in_tmp_cwd):
    from optuna.distributions import IntDistribution

    from bigmodel_cli.search.space import parse

    assert parse({}, ["data.batch_size=range(64,16,-16)"]).distributions["data.batch_size"] == IntDistribution(
        32, 64, step=16
    )  # 64, 48, 32
    code, _, err = cli(*SEARCH, *FAST, "run_name=down", "hydra.sweeper.n_trials=2", "data.batch_size=range(64,16,-16)")
    assert code == 0, err
    assert {t.params["data.batch_size"] for t in study_of(in_tmp_cwd / "multirun" / "train" / "down").trials} <= {
        32,
        48,
        64,
    }


def test_optunas_warnings_go_to_the_sweep_log_not_the_terminal(cli, in_tmp_cwd):
    """List choices (regularizer=[dropout,l2]) make Optuna warn about persistent storage, in the
    sweeper and in every job; the lines go to sweep.log and the jobs' log files."""
    code, out, err = cli(
        *SEARCH, *FAST, "run_name=lists", "hydra.sweeper.n_trials=1", "regularizer=choice([dropout],[dropout,l2])"
    )
    assert code == 0, err
    assert "UserWarning" not in out + err and "Choices for a categorical distribution" not in out + err
    assert (
        "Choices for a categorical distribution"
        in (in_tmp_cwd / "multirun" / "train" / "lists" / "sweep.log").read_text()
    )


def test_a_changed_categorical_space_is_one_line_and_leaves_no_trial_running(cli, in_tmp_cwd):
    import optuna

    base = [*SEARCH, *FAST, "run_name=changed"]
    assert cli(*base, "hydra.sweeper.n_trials=1", "optimizer=choice(adam,sgd)")[0] == 0
    code, out, err = cli(*base, "hydra.sweeper.n_trials=2", "optimizer=choice(adam,adamw)")
    assert code == 2 and "Traceback" not in out + err, err
    assert "optimizer: study 'changed'" in err and "searched choice(adam, sgd), this search choice(adam, adamw)" in err
    assert "fix: optimizer=choice(adam, sgd)" in err
    trials = study_of(in_tmp_cwd / "multirun" / "train" / "changed").trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE]


def test_completion_offers_the_search_settings(cli):
    from bigmodel_cli.commands.completion import candidates

    found = candidates("bigmodel train -m hparams_search=optuna hparams_search.")
    assert {"hparams_search.storage=", "hparams_search.study_name=", "hparams_search.pruner="} <= set(found)
    assert candidates("bigmodel train hparams_search.heart") == ["hparams_search.heartbeat_interval="]


def test_a_sweep_started_with_the_old_study_name_goes_on_with_that_study(cli, in_tmp_cwd):
    """Before studies took the sweep's name every study was 'train'; re-running such a sweep goes on
    with it (its jobs' run.json say so) instead of numbering a new study's trials into the old trials'
    directories."""
    import optuna

    base = [*SEARCH, *FAST, "run_name=legacy"]
    assert cli(*base, "hydra.sweeper.n_trials=1", "hparams_search.study_name=train")[0] == 0  # as the old default
    code, out, err = cli(*base, "hydra.sweeper.n_trials=2")
    assert code == 0 and "going on with study 'train'" in out, err
    sweep = in_tmp_cwd / "multirun" / "train" / "legacy"
    assert optuna.get_all_study_names(f"sqlite:///{sweep / 'optuna.db'}") == ["train"]
    assert len(study_of(sweep, "train").trials) == 2 and job_dirs(sweep) == ["0", "1"]
