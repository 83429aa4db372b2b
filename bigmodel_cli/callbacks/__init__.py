"""Lightning callbacks of bigmodel's own. conf/callbacks names progress.RichProgressBar; train adds
the guards (non-finite loss, stop signals) itself; timing.EpochTimer is for benchmarks
(`+callbacks.epoch_timer._target_=bigmodel_cli.callbacks.timing.EpochTimer`). A new callback goes
here and is named by a conf/callbacks option (or a regularizer's `callbacks:`)."""
