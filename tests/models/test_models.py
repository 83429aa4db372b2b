"""The model catalogue, generated from the conf/ tree: every model option overfits a fixed batch of
every data modality it reads (tiny widths), and refuses every modality it does not with one line
naming the models that fit. Plus the text/LM data, tokenizers and `bigmodel generate`."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
import torch

from bigmodel_cli.config import catalogue
from bigmodel_cli.config.catalogue import data_for, default_choices, model_modalities
from bigmodel_cli.errors import UserError
from bigmodel_cli.training.pieces import build_datamodule, build_module, plain, probe
from tests.conftest import FAST
from tests.support.data_files import prepare_files_for, write_text_table

MODELS = catalogue.groups()["model"]
MODALITIES = sorted({m for option in MODELS for m in model_modalities(option)})
# Width-like keys shrunk wherever a model option has them: tiny models, same code paths.
TINY = {"dim": 16, "hidden": 16, "channels": 8, "width": 8, "embed_dim": 16, "depth": 2, "heads": 2}


def data_option(modality: str) -> str:
    """The train default data if it has this modality, else the first option that has."""
    default = default_choices("train")["data"]
    options = data_for(modality)
    return default if default in options else options[0]


def tiny(model_cfg) -> list[str]:
    overrides = []
    for key, small in TINY.items():
        value = model_cfg.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            overrides.append(f"model.{key}={min(value, small)}")
        elif value is not None and hasattr(value, "__len__"):
            overrides.append(f"model.{key}=[{','.join(str(min(v, small)) for v in value)}]")
    return overrides


FITS = [(model, modality) for model in MODELS for modality in model_modalities(model)]
MISFITS = [(model, modality) for model in MODELS for modality in MODALITIES if modality not in model_modalities(model)]


def fixed_batch(datamodule):
    datamodule.setup("fit")
    return datamodule.on_after_batch_transfer(next(iter(datamodule.train_dataloader())), 0)


def tiny_overrides(model: str, modality: str, compose_cfg) -> list[str]:
    base = [f"model={model}", f"data={data_option(modality)}", "data.batch_size=16", *FAST]
    with compose_cfg("train", base, name="probe") as cfg:
        return base + tiny(cfg.model)


@pytest.mark.parametrize(("model", "modality"), FITS, ids=[f"{m}-{d}" for m, d in FITS])
def test_model_overfits_a_batch(model, modality, compose_cfg, tmp_path):
    with compose_cfg("train", tiny_overrides(model, modality, compose_cfg)) as cfg:
        prepare_files_for(cfg, tmp_path)
        torch.manual_seed(0)
        datamodule = build_datamodule(cfg.data)
        module = build_module(plain(cfg))
        probe(module, datamodule)
        batch = fixed_batch(datamodule)
    optimizer = torch.optim.Adam(module.parameters(), lr=3e-3)
    module.train()
    losses = []
    for step in range(60):
        optimizer.zero_grad()
        loss = module.training_step(batch, step)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        if losses[-1] < 0.6 * losses[0]:
            break
    assert losses[-1] < 0.6 * losses[0], (
        f"{model} on {modality} did not fit one batch: {losses[0]:.3f} -> {losses[-1]:.3f}"
    )


@pytest.mark.parametrize(("model", "modality"), FITS, ids=[f"{m}-{d}" for m, d in FITS])
def test_model_trains_on_each_modality_it_reads(model, modality, compose_cfg, tmp_path):
    """The whole train task (fit, validate, test the best checkpoint) for a few steps, tiny widths."""
    from bigmodel_cli.commands import train

    with compose_cfg("train", tiny_overrides(model, modality, compose_cfg)) as cfg:
        prepare_files_for(cfg, tmp_path)
        metrics = train.run(cfg)
    assert {"val/acc", "test/acc"} <= metrics.keys() and all(v == v for v in metrics.values())


@pytest.mark.parametrize(("model", "modality"), MISFITS, ids=[f"{m}-{d}" for m, d in MISFITS])
def test_unfit_model_data_pair_fails_clearly(model, modality, compose_cfg, tmp_path):
    from bigmodel_cli.commands import train

    with compose_cfg("train", [f"model={model}", f"data={data_option(modality)}", *FAST]) as cfg:
        prepare_files_for(cfg, tmp_path)
        with pytest.raises(UserError, match=f"cannot read {modality} data; models that fit: ") as info:
            train.run(cfg)
    fitting = [m for m in MODELS if modality in model_modalities(m)]
    assert all(m in str(info.value) for m in fitting)


def test_patch_size_that_does_not_divide_the_image(compose_cfg):
    from bigmodel_cli.commands import train

    with compose_cfg("train", ["model=transformer", "model.patch_size=3", *FAST]) as cfg:
        with pytest.raises(
            UserError,
            match=r"patch_size=3 does not divide data.image_size=8; valid choices: 1, 2, 4, 8"
            r".*models that fit image data: .*cnn",
        ):
            train.run(cfg)


def test_rnn_reads_image_rows(compose_cfg):
    with compose_cfg("train", ["model=rnn", "model.hidden=8"]) as cfg:
        module = build_module(plain(cfg))
    assert module.backbone.rnn.input_size == cfg.data.in_channels * cfg.data.image_size
    assert module(torch.zeros(3, 1, 8, 8)).shape == (3, 10)


def test_rnn_packs_padding_away(compose_cfg, tmp_path):
    """Padding after the tokens must not change an RNN's output (packed sequences)."""
    with compose_cfg("train", ["model=rnn", "data=text_csv", "model.bidirectional=true", "model.cell=gru"]) as cfg:
        model = build_module(plain(cfg)).backbone.eval()
    ids = torch.tensor([[5, 6, 7]])
    padded = torch.tensor([[5, 6, 7, 0, 0, 0]])
    assert torch.allclose(model(ids), model(padded), atol=1e-6)


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_transformer_masks_padding(pooling, compose_cfg):
    with compose_cfg(
        "train", ["model=transformer", "data=text_csv", f"model.pooling={pooling}", "model.positions=sinusoidal"]
    ) as cfg:
        model = build_module(plain(cfg)).backbone.eval()
    assert torch.allclose(model(torch.tensor([[5, 6, 7]])), model(torch.tensor([[5, 6, 7, 0, 0]])), atol=1e-5)


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_bert_pooling_reads_its_position_and_the_masked_lm_every_token(pooling, compose_cfg):
    """cls: the classifier reads the [CLS] position; mean: the mean of the real tokens' states (a
    masked-LM encoder never trains [CLS]). Either way padding changes nothing, and the masked-LM
    head predicts one token for each input token."""
    with compose_cfg("train", ["model=bert", "data=text_csv", f"model.pooling={pooling}"]) as cfg:
        model = build_module(plain(cfg)).backbone.eval()
    ids, padded = torch.tensor([[5, 6, 7]]), torch.tensor([[5, 6, 7, 0, 0]])
    assert torch.allclose(model(ids), model(padded), atol=1e-5)
    states = model.encode(padded)[0]
    pooled = states[:, 0] if pooling == "cls" else states[:, :3].mean(1)
    assert torch.allclose(model(padded), model.head(pooled), atol=1e-5)
    with compose_cfg("train", ["model=bert", "data=text_corpus", f"model.pooling={pooling}"], name="mlm") as cfg:
        masked_lm = build_module(plain(cfg)).backbone.eval()
    assert masked_lm(padded).shape == (1, 5, cfg.data.vocab_size)


def test_resnet_small_stem_channels_and_local_weights(compose_cfg, tmp_path):
    with compose_cfg("train", ["model=resnet", "data=synthetic", "data.in_channels=2", "data.image_size=16"]) as cfg:
        model = build_module(plain(cfg)).backbone
    assert model.net.conv1.kernel_size == (3, 3) and model.net.conv1.in_channels == 2
    assert isinstance(model.net.maxpool, torch.nn.Identity)
    path = tmp_path / "weights.pt"
    torch.save(model.state_dict(), path)
    with compose_cfg(
        "train",
        ["model=resnet", "data=synthetic", "data.in_channels=2", "data.image_size=16", f"model.weights={path}"],
        name="again",
    ) as cfg:
        loaded = build_module(plain(cfg)).backbone
    assert torch.equal(loaded.net.conv1.weight, model.net.conv1.weight)
    with compose_cfg("train", ["model=resnet", f"model.weights={path}"], name="misfit") as cfg:
        with pytest.raises(UserError, match="does not fit this model"):
            build_module(plain(cfg))


@pytest.mark.parametrize(("convs", "per_stage"), [("2", [2, 2]), ("[1,3]", [1, 3])])
def test_cnn_convs_per_stage(convs, per_stage, compose_cfg):
    """One count for every stage, or one per stage: the convolutions between the pools."""
    with compose_cfg("train", ["model=cnn", "model.channels=[4,8]", f"model.convs_per_stage={convs}"]) as cfg:
        model = build_module(plain(cfg)).backbone
    counts, run = [], 0
    for layer in model.features:
        run += isinstance(layer, torch.nn.Conv2d)
        if isinstance(layer, torch.nn.MaxPool2d):
            counts, run = [*counts, run], 0
    assert counts == per_stage
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    with compose_cfg(
        "train", ["model=cnn", "model.channels=[4,8]", "model.convs_per_stage=[1,2,2]"], name="bad"
    ) as cfg:
        with pytest.raises(UserError, match=r"convs_per_stage=\[1, 2, 2\] gives 3 stages .* fix: one count per stage"):
            build_module(plain(cfg))


def test_convs_per_stage_list_passes_validation_and_a_bad_entry_does_not(compose_cfg):
    from bigmodel_cli.config.validation import problems

    with compose_cfg("train", [], name="reference") as reference:
        for value, expected in (("[1,2]", []), ("[1,x]", ["should be an integer, or a list of them"])):
            with compose_cfg("train", [f"model.convs_per_stage={value}"], name=value) as cfg:
                found = problems(cfg, reference)
            assert all(any(e in p for p in found) for e in expected) and len(found) == len(expected), found


def test_vgg_keeps_only_the_pools_the_image_allows(compose_cfg):
    with compose_cfg("train", ["model=vgg", "model.arch=vgg16_bn", "model.width=8"]) as cfg:
        model = build_module(plain(cfg)).backbone
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in model.features) == 3  # 8 px: 8 -> 4 -> 2 -> 1
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)


# --- text data -------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl"])
def test_text_csv_reads_each_format_with_seeded_splits(suffix, compose_cfg, tmp_path):
    path = tmp_path / f"reviews{suffix}"
    write_text_table(path, rows=100)
    with compose_cfg("train", ["data=text_csv", f"data.path={path}", "data.max_length=8"]) as cfg:
        dm = build_datamodule(cfg.data)
        dm.setup()
        again = build_datamodule(cfg.data)
        again.setup()
    sizes = {split: len(ds) for split, ds in dm.datasets.items()}
    assert sizes == {"train": 72, "val": 8, "test": 20}
    assert dm.datasets["val"].indices == again.datasets["val"].indices
    ids, labels = next(iter(dm.train_dataloader()))
    assert ids.dtype == torch.long and ids.shape[1] <= 8 and labels.max() < 2


def test_word_vocabulary_from_training_split_and_split_files(compose_cfg, tmp_path):
    write_text_table(tmp_path / "train.csv", rows=60)
    write_text_table(tmp_path / "test.csv", rows=20, seed=1)
    with compose_cfg(
        "train",
        [
            "data=text_csv",
            f"data.path={tmp_path / 'train.csv'}",
            f"data.test_path={tmp_path / 'test.csv'}",
            "data.tokenizer=word",
            "data.vocab_size=12",
            "data.min_freq=2",
        ],
    ) as cfg:
        dm = build_datamodule(cfg.data)
        dm.setup()
    assert len(dm.datasets["test"]) == 20 and len(dm.datasets["train"]) + len(dm.datasets["val"]) == 60
    assert dm.tokenizer.size == 12 and dm.tokenizer.tokens[:2] == ["<pad>", "<unk>"]
    assert dm.tokenizer.encode("zzzz-never-seen")[0] == 1


def test_text_errors_name_the_fix(compose_cfg, tmp_path):
    path = tmp_path / "t.csv"
    write_text_table(path, rows=30, num_classes=3)
    cases = [
        (["data=text_csv"], "data.path is not set"),
        (["data=text_csv", f"data.path={path}"], "labels go up to 2 but data.num_classes=2"),
        (
            ["data=text_csv", f"data.path={path}", "data.label_column=stars"],
            "no column 'stars'; valid choices: text, label",
        ),
        (
            ["data=text_csv", f"data.path={path}", "data.tokenizer=byte", "data.vocab_size=100"],
            "byte tokenizer has 257 ids",
        ),
    ]
    for i, (overrides, message) in enumerate(cases):
        with compose_cfg("train", overrides, name=f"case{i}") as cfg:
            with pytest.raises(UserError, match=message):
                build_datamodule(cfg.data).setup()


def test_imdb_without_datasets_package_is_a_clear_error(compose_cfg, monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # import fails as if not installed
    with compose_cfg("train", ["data=imdb"]) as cfg:
        with pytest.raises(UserError, match="needs the Hugging Face `datasets` package"):
            build_datamodule(cfg.data).setup()


def test_imdb_loads_through_hugging_face_datasets(compose_cfg, monkeypatch):
    """The real loading code, with `datasets.load_dataset` answering from memory (no network)."""
    calls = []

    def load_dataset(name, cache_dir=None):
        calls.append(name)
        rows = {"text": ["a great film", "an awful film"] * 20, "label": [1, 0] * 20}
        return {"train": rows, "test": rows}

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    with compose_cfg("train", ["data=imdb"]) as cfg:
        dm = build_datamodule(cfg.data)
        dm.setup()
    assert calls == ["imdb"] and len(dm.datasets["test"]) == 40 and "great" in dm.tokenizer.tokens


def test_imdb_offline_is_a_clear_error(compose_cfg, monkeypatch):
    def load_dataset(name, cache_dir=None):
        raise ConnectionError("Couldn't reach 'imdb' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    with compose_cfg("train", ["data=imdb"]) as cfg:
        with pytest.raises(UserError, match="could not load the Hugging Face dataset 'imdb'.*data.path="):
            build_datamodule(cfg.data).setup()


@pytest.mark.parametrize("level", ["byte", "char"])
def test_char_lm_blocks_and_tail_split(level, compose_cfg):
    with compose_cfg("train", ["data=char_lm", f"data.level={level}", "data.block_size=16"]) as cfg:
        dm = build_datamodule(cfg.data)
        dm.setup()
    x, y = dm.datasets["train"][3]
    assert x.shape == y.shape == (16,) and torch.equal(x[1:], y[:-1])
    assert int(dm.datasets["val"].ids[0]) == int(
        dm.tokenizer.encode(dm.tokenizer.decode([int(dm.datasets["val"].ids[0])]))[0]
    )
    assert max(int(ds.ids.max()) for ds in dm.datasets.values()) < cfg.data.vocab_size
    assert len(dm.datasets["train"]) > 10 * len(dm.datasets["test"])


# --- the language model and bigmodel generate ------------------------------------------------------


def test_gpt_trains_on_char_lm_and_generate_samples_from_its_checkpoint(cli, in_tmp_cwd):
    code, out, err = cli(
        "train",
        "model=gpt",
        "data=char_lm",
        "data.level=char",
        "data.vocab_size=96",
        "data.block_size=32",
        "model.dim=32",
        "model.depth=1",
        *FAST,
    )
    assert code == 0, err
    checkpoint = next(Path("outputs/train").glob("*/checkpoints/best.ckpt"))
    saved = torch.load(checkpoint, weights_only=True)
    assert saved["tokenizer"]["kind"] == "char" and len(saved["tokenizer"]["tokens"]) <= 96
    code, out, err = cli(
        "generate", f"ckpt_path={checkpoint}", "prompt=def", "max_new_tokens=20", "top_k=5", "num_samples=2"
    )
    assert code == 0, err
    samples = next(Path("outputs/generate").glob("*/samples.txt")).read_text()
    assert samples.startswith("def") and samples.count("def") >= 2


def test_generate_refuses_a_classifier_checkpoint(cli, in_tmp_cwd):
    code, _, err = cli("train", "model=mlp", *FAST)
    assert code == 0, err
    checkpoint = next(Path("outputs/train").glob("*/checkpoints/best.ckpt"))
    code, _, err = cli("generate", f"ckpt_path={checkpoint}")
    assert code == 2 and "does not generate text" in err


def test_gpt_is_causal_and_ties_embeddings(compose_cfg):
    with compose_cfg(
        "train", ["model=gpt", "data=char_lm", "model.dim=16", "model.depth=1", "optimizer=adamw", "scheduler=none"]
    ) as cfg:
        module = build_module(plain(cfg))
    model = module.backbone.eval()
    assert model.head.weight is model.tokens.weight
    a, b = torch.tensor([[1, 2, 3, 4]]), torch.tensor([[1, 2, 3, 9]])
    assert torch.allclose(model(a)[:, :3], model(b)[:, :3], atol=1e-6)
    optimizer = module.configure_optimizers()
    optimizer = optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer
    no_decay = [g for g in optimizer.param_groups if g["weight_decay"] == 0.0]
    assert no_decay and all(p.ndim < 2 for g in no_decay for p in g["params"])
