"""Spec loading and validation: every bad field gives one line naming the field, its value and the rule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from chatbench import loadgen
from chatbench.errors import ConfigError
from chatbench.loadgen.plan import build_plan


def test_profiles_load_with_whales_and_target_sizes() -> None:
    sizes = {"smoke_fifth": 4_000, "smoke": 20_000, "ci": 200_000, "release": 1_000_000, "scale": 10_000_000,
             "scale100": 100_000_000}
    assert set(loadgen.profiles()) == set(sizes)
    for name, messages in sizes.items():
        spec = loadgen.load_spec(name)
        assert spec.messages.count == messages
        assert spec.whales.count >= 1 and min(spec.whale_sizes()) >= 1000
    assert max(loadgen.load_spec("release").whale_sizes()) >= 10_000
    assert max(loadgen.load_spec("scale").whale_sizes()) >= 10_000
    assert max(loadgen.load_spec("scale100").whale_sizes()) >= 1_000_000


def test_overrides_dotted_and_nested() -> None:
    spec = loadgen.load_spec("smoke", overrides={"messages.count": 21_000, "whales": {"count": 2}})
    assert spec.messages.count == 21_000 and spec.whales.count == 2


def test_spec_file(tmp_path: Path) -> None:
    text = (loadgen.spec.PROFILES_DIR / "smoke.toml").read_text().replace('name = "smoke"', 'name = "mine"')
    path = tmp_path / "mine.toml"
    path.write_text(text)
    assert loadgen.load_spec(path=path).name == "mine"


@pytest.mark.parametrize(
    ("overrides", "needles"),
    [
        ({"users.count": -5}, ["users.count", "-5", ">= 1"]),
        ({"whales.min_messages": 3000, "whales.max_messages": 2000}, ["whales.min_messages", "3000", "<="]),
        ({"conversations.colour": "blue"}, ["conversations.colour", "unknown", "messages_median"]),
        ({"surprise": 1}, ["surprise", "unknown"]),
        ({"messages.count": "many"}, ["messages.count", "'many'", "int"]),
        ({"messages.tie_share": True}, ["messages.tie_share", "True", "float"]),
        ({"whales.count": 5000}, ["whales.count", "5000", "conversations.count"]),
        ({"whales.min_messages": 10}, ["whales.min_messages", "10", "1000"]),
        ({"messages.count": 5}, ["messages.count", "5", "between"]),
        ({"non_ascii_share": 1.5}, ["non_ascii_share", "1.5", "between 0.0 and 1.0"]),
        ({"locales": ["xx_YY"]}, ["locales", "xx_YY", "Faker locale"]),
        ({"time.start": "yesterday"}, ["time.start", "yesterday", "ISO 8601"]),
        ({"users.heavy": 400}, ["users.heavy", "400", "users.count"]),
        ({"conversations.messages_max": 1500}, ["conversations.messages_max", "1500", "whales.min_messages"]),
    ],
)
def test_bad_fields_are_named(overrides: dict[str, Any], needles: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        loadgen.load_spec("smoke", overrides=overrides)
    message = str(info.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, (needle, message)


def test_unknown_profile_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"not a profile; use one of .*smoke"):
        loadgen.load_spec("huge")
    with pytest.raises(ConfigError, match="cannot read"):
        loadgen.load_spec(path=tmp_path / "absent.toml")


def test_plan_is_deterministic_heavy_tailed_and_exact() -> None:
    spec = loadgen.load_spec("smoke")
    with build_plan(spec, 7) as a, build_plan(spec, 7) as b:
        a_rows, b_rows = a.skeleton.load_all(), b.skeleton.load_all()
        assert (a_rows.time == b_rows.time).all() and (a.conv_user == b.conv_user).all()
        assert int(a.conv_messages.sum()) == spec.messages.count == a_rows.hi
        assert sorted(a.conv_messages.tolist(), reverse=True)[: spec.whales.count] == list(spec.whale_sizes())
        owned = sorted((a.conv_user.tolist().count(u) for u in set(a.conv_user.tolist())), reverse=True)
        assert owned[0] >= 100 and owned[len(owned) // 2] <= 5  # a few heavy users, most light
        assert (a_rows.time[1:] >= a_rows.time[:-1]).all()  # time order: ids follow created_at
        # Each conversation's last message time is its updated_at.
        last = np.full(len(a.conv_user), -1, dtype=np.int64)
        np.maximum.at(last, a_rows.conv, a_rows.time)
        assert (last == a.conv_updated).all()
        directory = a.skeleton.directory
    assert not directory.exists()  # closing the plan removes the spilled skeleton
    with build_plan(spec, 7, order="conversation") as c:
        c_rows = c.skeleton.load_all()
        assert (c_rows.conv[1:] >= c_rows.conv[:-1]).all()


@pytest.mark.parametrize("order", ["time", "conversation"])
def test_skeleton_does_not_depend_on_block_or_bucket_sizes(order: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The skeleton is drawn block by block and spilled in buckets; neither size may change the data."""
    import chatbench.loadgen.plan as plan_module
    from chatbench.loadgen.params import seed_parameters

    spec = loadgen.load_spec("smoke")
    with build_plan(spec, 3, order) as whole:
        expected, expected_params = whole.skeleton.load_all(), seed_parameters(whole)
        assert whole.skeleton.buckets == 1
    monkeypatch.setattr(plan_module, "BUCKET_ROWS", 1_500)
    monkeypatch.setattr(plan_module, "_BLOCK_MESSAGES", 2_000)
    monkeypatch.setattr(plan_module, "_TIE_DRAW", 700)
    with build_plan(spec, 3, order) as split:
        assert split.skeleton.buckets > 5
        got = split.skeleton.load_all()
        assert (got.conv == expected.conv).all() and (got.seq == expected.seq).all()
        assert (got.time == expected.time).all()
        assert seed_parameters(split) == expected_params  # tie cursors (ids) included


@pytest.mark.parametrize("order", ["time", "conversation"])
def test_buckets_are_announced_complete_and_in_order_while_the_plan_is_drawn(
    order: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A COPY may start on a bucket as soon as it is announced: it must never grow afterwards."""
    import chatbench.loadgen.plan as plan_module

    monkeypatch.setattr(plan_module, "BUCKET_ROWS", 1_000)
    monkeypatch.setattr(plan_module, "_BLOCK_MESSAGES", 1_500)
    spec = loadgen.load_spec("smoke")
    announced: list[tuple[int, int, int, int]] = []  # bucket, first row, rows, bytes on disk then
    inputs: list[object] = []
    writes: list[int] = []  # spill writes so far, at each announcement
    spill_write = plan_module._Spill.write

    def counting_write(self: object, bucket: int, rows: np.ndarray) -> None:
        writes.append(0)
        spill_write(self, bucket, rows)  # type: ignore[arg-type]

    monkeypatch.setattr(plan_module._Spill, "write", counting_write)
    seen: list[int] = []

    def ready(bucket: int, first: int, rows: int) -> None:
        path = directory[0] / f"bucket-{bucket:06d}.bin"
        announced.append((bucket, first, rows, path.stat().st_size if path.exists() else 0))
        seen.append(len(writes))

    directory: list[Path] = []

    def got_inputs(render: object, where: Path) -> None:
        inputs.append(render)
        directory.append(where)

    with build_plan(spec, 3, order, on_inputs=got_inputs, on_bucket=ready) as plan:
        offsets = plan.skeleton.offsets
        assert len(inputs) == 1
        assert [a[0] for a in announced] == list(range(plan.skeleton.buckets))
        assert [(a[1], a[2]) for a in announced] == [(offsets[b], offsets[b + 1] - offsets[b]) for b in
                                                      range(plan.skeleton.buckets)]
        assert all(size == rows * 16 for _, _, rows, size in announced)  # complete when announced
        assert seen[0] < len(writes) / 2  # the first bucket was ready long before the drawing ended
