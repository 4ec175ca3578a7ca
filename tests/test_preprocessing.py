"""Per-batch input transforms at the model's input (models.preprocessing): images made into
what an ImageNet CNN expects, tokenised text cut to each batch's longest sequence, and a
replay memory that keeps the small raw inputs."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import cl_course_lib as cl
from cl_course_lib.data.benchmarks import Benchmark, Task, TaskData
from cl_course_lib.models import ImageInput, Preprocessed, TrimPadding


def test_grey_digits_become_normalised_rgb_of_the_asked_size():
    x = torch.rand(5, 1, 28, 28)
    out = ImageInput(32, mean=(0.5, 0.4, 0.3), std=(0.2, 0.2, 0.1))(x)
    assert out.shape == (5, 3, 32, 32)
    resized = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)
    for c, (m, s) in enumerate(((0.5, 0.2), (0.4, 0.2), (0.3, 0.1))):
        torch.testing.assert_close(out[:, c], (resized[:, 0] - m) / s)


def test_shrinking_antialiases_and_three_channels_pass_through():
    x = torch.rand(2, 3, 64, 64)
    out = ImageInput(16, mean=(0, 0, 0), std=(1, 1, 1))(x)
    want = F.interpolate(x, size=(16, 16), mode="bilinear", align_corners=False, antialias=True)
    torch.testing.assert_close(out, want)
    same = ImageInput(64, mean=(0, 0, 0), std=(1, 1, 1))(torch.rand(2, 64, 64))  # (B, H, W) grey
    assert same.shape == (2, 3, 64, 64) and torch.equal(same[:, 0], same[:, 2])


def test_bad_images_are_explained():
    with pytest.raises(ValueError, match=r"\(B, H, W\) or \(B, 1 or 3, H, W\)"):
        ImageInput(32)(torch.rand(2, 2, 8, 8))
    with pytest.raises(ValueError, match="size=0 is not allowed"):
        ImageInput(0)


def test_trim_padding_cuts_to_the_longest_sequence_of_the_batch():
    mask = torch.tensor([[1, 1, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0]])
    ids = torch.arange(12).view(2, 6) * mask
    out = TrimPadding()({"input_ids": ids, "attention_mask": mask, "label_weight": torch.ones(2)})
    assert torch.equal(out["input_ids"], ids[:, :3]) and torch.equal(out["attention_mask"], mask[:, :3])
    assert torch.equal(out["label_weight"], torch.ones(2))  # not a (B, L) tensor: as is
    with pytest.raises(ValueError, match="attention_mask"):
        TrimPadding()(torch.zeros(2, 3))


class BagOfTokens(nn.Module):
    """A tiny text model: the mean embedding of the attended tokens, then a linear head."""

    def __init__(self):
        super().__init__()
        self.embed, self.head = nn.Embedding(10, 8), nn.Linear(8, 2)
        self.lengths = []

    def forward(self, x, task=None):
        self.lengths.append(x["input_ids"].shape[1])
        mask = x["attention_mask"].unsqueeze(-1).float()
        return self.head((self.embed(x["input_ids"]) * mask).sum(1) / mask.sum(1))


def test_trimmed_text_gives_the_same_logits_and_replay_stores_the_untrimmed_inputs():
    torch.manual_seed(0)
    n, length = 40, 12
    lengths = torch.randint(1, 5, (n, 1))
    mask = (torch.arange(length) < lengths).long()
    ids = torch.randint(1, 10, (n, length)) * mask
    y = (ids == 3).any(dim=1).long()
    data = TaskData({"input_ids": ids, "attention_mask": mask}, y, 0)
    inner = BagOfTokens()
    model = Preprocessed(TrimPadding(), inner)
    torch.testing.assert_close(model(data.x), inner(data.x))  # padding does not change the answer
    assert inner.lengths[0] == int(lengths.max()) and inner.lengths[1] == length
    bench = Benchmark("tokens", "domain", (Task(0, "t", ("no 3", "3"), data, data),), 2, 1, (length,))
    replay = cl.strategies.Replay(model, mem_size=16)
    cl.run(replay, bench, epochs=2, batch_size=8, progress=False)
    assert replay.buffer.x["input_ids"].shape == (16, length)  # the memory keeps the raw, padded inputs
    assert max(inner.lengths[2:]) <= int(lengths.max())  # every batch the model saw was trimmed
