"""Board configs load, validate, and fail with one line naming the file and field."""

import pytest

from tinysense.boards import available_boards, load_board
from tinysense.cli import main
from tinysense.errors import TinysenseError


def test_all_shipped_boards_load():
    names = available_boards()
    assert {"ESP32_GENERIC", "ESP32_GENERIC_S3", "ESP32_GENERIC_C3", "VIRTUAL"} <= set(names)
    for name in names:
        cfg = load_board(name)
        assert cfg.name == name


@pytest.mark.parametrize("name,chip,offset,arch,psram", [
    ("ESP32_GENERIC", "esp32", 0x1000, "xtensawin", False),
    ("ESP32_GENERIC_S3", "esp32s3", 0x0, "xtensawin", True),
    ("ESP32_GENERIC_C3", "esp32c3", 0x0, "rv32imc", False),
    ("VIRTUAL", "virtual", 0x0, "x64", False),
])
def test_board_facts(name, chip, offset, arch, psram):
    cfg = load_board(name)
    assert (cfg.chip, cfg.firmware_offset, cfg.mpy_arch, cfg.psram) == (chip, offset, arch, psram)


def test_esp32_heap_budget_is_about_110k():
    assert 100_000 <= load_board("ESP32_GENERIC").heap_budget <= 115_000


def test_unknown_board_names_known_ones():
    with pytest.raises(TinysenseError, match="unknown board 'NOPE'.*ESP32_GENERIC"):
        load_board("NOPE")


@pytest.mark.parametrize("text,field", [
    ('chip = "esp32"\n', "name"),
    ('name="X"\nchip="esp99"\nflash_size="4MB"\nfirmware_offset=0\nbaud=1\nheap_budget=99999\n'
     'psram=false\nmpy_arch="x64"\n', "chip"),
    ('name="X"\nchip="esp32"\nflash_size="4MB"\nfirmware_offset=0\nbaud=1\nheap_budget=99999\n'
     'psram=false\nmpy_arch="rv32imc"\n', "mpy_arch"),
    ('name="X"\nchip="esp32"\nflash_size="4MB"\nfirmware_offset="0"\nbaud=1\n'
     'heap_budget=99999\npsram=false\nmpy_arch="xtensawin"\n', "firmware_offset"),
    ('name="X"\nchip="esp32"\nflash_size="4MB"\nfirmware_offset=0\nbaud=1\nheap_budget=99999\n'
     'psram=false\nmpy_arch="xtensawin"\nbogus=1\n', "bogus"),
    ('name = [unclosed\n', None),
])
def test_malformed_config_names_file_and_field(tmp_path, text, field):
    path = tmp_path / "BAD.toml"
    path.write_text(text)
    with pytest.raises(TinysenseError) as info:
        load_board(str(path))
    msg = str(info.value)
    assert str(path) in msg and "\n" not in msg
    if field:
        assert f"'{field}'" in msg


def test_cli_unknown_board_is_one_line(capsys):
    assert main(["boards", "NOPE"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("tinysense: error: unknown board") and err.count("\n") == 1
