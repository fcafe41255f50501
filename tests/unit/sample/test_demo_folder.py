"""``dataplump demo``'s folder: the shop pipeline copied in and pinned to it, an earlier
demo emptied, a folder of the user's refused untouched."""

from __future__ import annotations

from pathlib import Path

import pytest

from dataplump.config import load_config
from dataplump.sample import SampleError
from dataplump.sample.demo import MARKER, pin, prepare, shop_pipeline

ROOT = Path(__file__).parents[3]


def test_the_shop_pipeline_is_found() -> None:
    assert shop_pipeline() == (ROOT / "examples" / "shop").resolve()


def test_prepare_copies_the_pipeline_pinned_to_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "elsewhere:9092")
    monkeypatch.setenv("SHOP_DB_URL", "postgresql+psycopg://u:p@elsewhere/shop")
    made = prepare(tmp_path / "demo")
    assert (made.root / MARKER).is_file()
    assert sorted(p.name for p in (made.root / "contracts").iterdir()) == sorted(
        p.name for p in (shop_pipeline() / "contracts").iterdir()
    )
    config = load_config(made.config)
    # neither variable reaches the demo: its own database, its own broker
    assert config.source.url.get_secret_value() == f"sqlite:///{tmp_path}/demo/shop.db"
    assert config.kafka.is_managed
    assert config.kafka.managed.port == made.kafka_port
    assert config.kafka.managed.data_dir == made.root / ".dataplump" / "kafka"
    assert [c.name for c in config.present.charts]  # the shop's charts come along


def test_a_second_prepare_empties_the_earlier_demo(tmp_path: Path) -> None:
    first = prepare(tmp_path / "demo")
    (first.root / "shop.db").write_bytes(b"old")
    (first.root / "report.html").write_text("old")
    second = prepare(tmp_path / "demo")
    assert not second.database.exists()
    assert not (second.root / "report.html").exists()
    assert second.config.is_file()


@pytest.mark.parametrize("content", ["file", "folder"])
def test_a_folder_of_the_users_is_refused_untouched(tmp_path: Path, content: str) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    kept = folder / "precious.txt"
    if content == "file":
        kept.write_text("keep me")
    else:
        (folder / ".dataplump" / "kafka").mkdir(parents=True)
        kept = folder / ".dataplump" / "kafka"
    with pytest.raises(SampleError, match="not empty and not a demo folder; choose another"):
        prepare(folder)
    assert kept.exists()


def test_a_file_in_place_of_the_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "demo").write_text("x")
    with pytest.raises(SampleError, match="is a file"):
        prepare(tmp_path / "demo")


def test_pin_names_a_line_the_demo_cannot_find() -> None:
    with pytest.raises(SampleError, match=r"0 line\(s\) `url: .*` where the demo expects one"):
        pin("pipeline:\n  name: x\n", Path("/x/shop.db"), 9092)
