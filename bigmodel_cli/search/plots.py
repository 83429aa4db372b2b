"""The study's own pictures for `bigmodel report`: Optuna's optimisation history and parameter
importances (its matplotlib visualisations), as PNGs in the sweep directory."""

from __future__ import annotations

import warnings
from pathlib import Path

from bigmodel_cli.atomic import atomic_path
from bigmodel_cli.extras import pyplot
from bigmodel_cli.search.study import DEFAULT_STORAGE_FILE, SearchSettings, quiet_experimental


def find_study(sweep_dir: Path, job_config: dict):
    """The study a sweep's jobs reported to (their hparams_search node says where); None when the
    sweep was not an Optuna search or its storage is gone."""
    import optuna

    node = job_config.get("hparams_search")
    if not node:
        return None
    settings = SearchSettings(**{**node, "trial": None}).named(job_config.get("run_name"), sweep_dir)
    if not settings.storage and not (sweep_dir / DEFAULT_STORAGE_FILE).is_file():
        return None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=settings.study_name, storage=settings.storage_url(sweep_dir))


def write_study_plots(sweep_dir: Path, study) -> tuple[list[Path], list[str]]:
    """optuna_history.png and optuna_importances.png; returns the files written and, for a picture
    the study cannot give yet (importances need two completed trials), why not."""
    from optuna.visualization import matplotlib as optuna_plots

    plt = pyplot()

    written, notes = [], []
    for name, draw in (
        ("optuna_history.png", optuna_plots.plot_optimization_history),
        ("optuna_importances.png", optuna_plots.plot_param_importances),
    ):
        try:
            with quiet_experimental(), warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", UserWarning)
                ax = draw(study)
        except (ValueError, RuntimeError) as exc:
            notes.append(f"{name}: {str(exc).splitlines()[0]}")
            continue
        except ImportError:  # fANOVA, Optuna's default importance evaluator, fits scikit-learn's forest
            notes.append(f"{name} skipped: Optuna's importances need scikit-learn (fix: pip install scikit-learn)")
            continue
        notes += [f"{name}: {str(w.message).splitlines()[0]}" for w in caught if issubclass(w.category, UserWarning)]
        ax.figure.set_size_inches(7, 4.5)
        ax.figure.tight_layout()
        with atomic_path(sweep_dir / name) as tmp:
            ax.figure.savefig(tmp, dpi=100)
        plt.close(ax.figure)
        written.append(sweep_dir / name)
    return written, notes
