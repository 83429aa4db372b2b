"""fastText (model=mlp on text) and Kim's CNN (model=cnn on text): what their text-only keys do,
and the raw texts of each split that a baseline reads (data.text.texts_and_labels)."""

from __future__ import annotations

import torch

from bigmodel_cli.data.text import texts_and_labels
from bigmodel_cli.models.cnn import CNN
from bigmodel_cli.models.mlp import MLP
from bigmodel_cli.training.pieces import build_datamodule
from tests.support.data_files import write_text_table

SENTENCE = torch.tensor([[5, 6, 7, 8, 9, 10]])
REVERSED = SENTENCE.flip(1)


def seeded(make):
    torch.manual_seed(0)
    return make().eval()


def test_bigram_buckets_make_fasttext_see_word_order():
    """Without buckets a text is a bag of words (order-blind); with them its adjacent pairs count."""
    bag = seeded(lambda: MLP(3, [], modality="text", vocab_size=20, embed_dim=8))
    bigrams = seeded(lambda: MLP(3, [], modality="text", vocab_size=20, embed_dim=8, bigram_buckets=64))
    assert torch.allclose(bag(SENTENCE), bag(REVERSED))
    assert not torch.allclose(bigrams(SENTENCE), bigrams(REVERSED))
    assert bigrams.net[0].bag.num_embeddings == 20 + 64


def test_kernel_sizes_set_the_windows_kim_cnn_reads():
    """Width-1 convolutions see single words (order-blind after the max); width 3 sees trigrams."""
    unigrams = seeded(lambda: CNN(3, [4], modality="text", vocab_size=20, embed_dim=8, kernel_sizes=[1], hidden=8))
    trigrams = seeded(lambda: CNN(3, [4], modality="text", vocab_size=20, embed_dim=8, kernel_sizes=[3], hidden=8))
    assert torch.allclose(unigrams(SENTENCE), unigrams(REVERSED))
    assert not torch.allclose(trigrams(SENTENCE), trigrams(REVERSED))
    widths = seeded(lambda: CNN(3, [4], modality="text", vocab_size=20, embed_dim=8, kernel_sizes=[2, 3, 4], hidden=8))
    assert widths.head[2].in_features == 4 * 3  # filters x widths


def test_text_models_ignore_the_padding_their_batch_adds():
    """A text's logits are the same alone and padded beside a longer one, however short it is."""
    for model in (
        seeded(lambda: CNN(3, [4], modality="text", vocab_size=20, embed_dim=8, kernel_sizes=[3, 5], hidden=8)),
        seeded(lambda: MLP(3, [8], modality="text", vocab_size=20, embed_dim=8, bigram_buckets=16)),
    ):
        for text in ([5, 6, 7, 8, 9, 10], [5, 6], [7]):
            alone = model(torch.tensor([text]))
            padded = model(torch.tensor([text + [0] * (9 - len(text)), [3] * 9]))[:1]
            assert torch.allclose(alone, padded, atol=1e-6), (type(model).__name__, text)


def test_texts_and_labels_are_the_splits_the_model_reads(compose_cfg, tmp_path):
    path = tmp_path / "texts.csv"
    write_text_table(path, rows=80, num_classes=2)
    overrides = ["data=text_csv", f"data.path={path}", "data.train_fraction=0.5"]
    with compose_cfg("train", overrides) as cfg:
        datamodule = build_datamodule(cfg.data)
    datamodule.setup("fit")
    splits = {split: texts_and_labels(datamodule.datasets[split]) for split in ("train", "val", "test")}
    for split, (texts, labels) in splits.items():
        dataset = datamodule.datasets[split]
        assert len(texts) == len(labels) == len(dataset)
        for index in (0, len(dataset) - 1):  # each text is the one the model's ids were read from
            ids, label = dataset[index]
            expected = datamodule.tokenizer.encode(texts[index])[: datamodule.max_length]
            assert ids.tolist() == expected and label == labels[index]
    train, val, test = (set(splits[s][0]) for s in ("train", "val", "test"))
    assert not (train & test) and not (val & test) and len(train) < 0.5 * 80
